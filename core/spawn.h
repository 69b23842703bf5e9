/*
 * spawn.h -- starting the managed server (or `appd with`'s check) as a
 * child in its own process group (setpgid), with stdin on /dev/null (or
 * inherited), stdout+stderr on `out_fd`, nothing else inherited, signal dispositions reset and the mask cleared, optional listener
 * (fd 3, LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, sd_listen_fds(3)) and
 * readiness fd (APPD_NOTIFY_FD, s6 style).  exec(3) failures are reported
 * back through a CLOEXEC pipe, so a missing binary is an error here, not
 * a mysterious exit 127.
 */
#ifndef APPD_SPAWN_H
#define APPD_SPAWN_H

#include <signal.h>
#include <sys/types.h>

#include "core/base/err.h"

struct spawn_opts {
	char *const *argv;           /* argv[0] looked up in PATH if it has no '/' */
	const char *cwd;             /* NULL: inherit */
	int out_fd;                  /* becomes fd 1 and 2 */
	int stdin_inherit;           /* 1: keep our stdin; 0: /dev/null */
	int listen_fd;               /* -1, or becomes fd 3 with LISTEN_* set */
	int notify_fd;               /* -1, or passed with APPD_NOTIFY_FD */
	const char *notify_socket;   /* NULL, or exported as NOTIFY_SOCKET */
	unsigned long long watchdog_usec; /* 0, or WATCHDOG_USEC with WATCHDOG_PID
	                              * the child's own pid (sd_watchdog_enabled(3)) */
	const char *const *env_add;  /* NULL-terminated NAME=VALUE list, or NULL */
	const sigset_t *sigmask;     /* mask for the child */
};

/* Fork and exec.  Returns the child's pid (its pgid too), or -1 with
 * ERR_SPAWN naming the program and the exec error. */
pid_t spawn_server(const struct spawn_opts *o, struct err *e);

#endif
