/* cmd_supervise.c -- `appd supervise` (internal): run the supervisor.
 * Launched detached by `start`; may also be run by hand, in which case it
 * claims state/supervisor.pid itself and refuses a second supervisor.
 * `appd run` is the same supervisor in the foreground of a service
 * manager or as PID 1 of a container (core/mgrnotify.h). */
#include "cmd/appd.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"
#include "core/lock.h"
#include "core/settings.h"
#include "core/supervisor.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

int
cmd_supervise(int argc, char **argv)
{
	struct sup_opts so = { -1, 0, 0, 0, -1, -1, -1, -1, 0, 0 };
	/* static: the supervisor's resident stack stays small */
	static struct home h;
	static struct err e;
	int i, rc;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) {
			if (arg_seconds("--ready-fd", argv[++i], 3, 1023, &so.ready_fd, &e) < 0)
				return out_fail(&e);
			if (fcntl(so.ready_fd, F_SETFD, FD_CLOEXEC) < 0)
				so.ready_fd = -1;
		} else if (strcmp(argv[i], "--ready-timeout") == 0) {
			if (arg_seconds("--ready-timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &so.ready_timeout_s, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--handover") == 0 && i + 1 < argc) {
			/* LISTENER,OUTPUT-READ,OUTPUT-WRITE[,CONTROL] (sup_refresh.c) */
			int *dst[] = { &so.h_lfd, &so.h_out_rd, &so.h_out_wr, &so.h_ctl };
			const char *p = argv[++i];
			int k;
			for (k = 0; k < 4; k++) {
				long long v;
				if ((k > 0 && scan_lit(&p, ",") < 0) || scan_ll(&p, &v) < 0 ||
				    v < -1 || v > 65535)
					break;
				*dst[k] = (int)v;
			}
			if (k < 3 || *p != '\0') {
				err_set(&e, ERR_USAGE, "bad --handover \"%s\"", argv[i]);
				return out_fail(&e);
			}
			so.handover = 1;
		} else if (strcmp(argv[i], "--reserved") == 0) {
			so.reserved = 1;
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to supervise", argv[i]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	rc = supervisor_run(&h, &so, &e);
	if (rc != 0 && e.code != ERR_NONE)
		fmt_fd(2, "appd supervise: %s\n", e.msg);
	return rc;
}

/*
 * `appd run [--notification-fd N] [--timeout S] [--ready SPEC] [-- CMD ARGS...]`: record CMD
 * as `start -- CMD` does, then supervise in this process: the same state
 * files, locks and control socket as a detached supervisor, so every other
 * command works against it.  Readiness goes to the service manager
 * (systemd NOTIFY_SOCKET, s6 notification fd N).  Exit status: 0 after
 * `appd stop` (or TERM/INT), the server's status when the restart policy
 * ends supervision (128 + signal for a signal), 1 when supervision fails;
 * nothing is printed on success (a service manager logs stderr).
 */
/* What `run` records and checks before supervising (under the lock),
 * in a frame of its own below cmd_run's: the supervisor's loop frame
 * takes its place, and its first stack release (sup_trim) returns the
 * pages of this 37 KB frame (settings, the expanded command) to the
 * kernel. */
static __attribute__((noinline)) int
run_prepare(const struct home *h, int ncmd, char **cmd, const char *ready, struct err *e)
{
	struct settings s;

	if (cmd_record_server(h, ncmd, cmd, ready, e) < 0 ||
	    settings_load(h->settings, &s, e) < 0 || cmd_preflight(h, &s, e) < 0)
		return -1;
	return 0;
}

int
cmd_run(int argc, char **argv)
{
	struct sup_opts so = { -1, 0, 0, 0, -1, -1, -1, -1, 1, 0 };
	static struct home h;
	static struct err e;
	char **cmd = NULL;
	const char *ready = NULL;
	int i, ncmd = 0, lock, rc;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			cmd = argv + i + 1;
			ncmd = argc - i - 1;
			if (ncmd == 0)
				return err_set(&e, ERR_USAGE, "run: no command after --"), out_fail(&e);
			break;
		} else if (strcmp(argv[i], "--notification-fd") == 0) {
			if (arg_seconds("--notification-fd", i + 1 < argc ? argv[++i] : NULL, 3,
			    1023, &so.s6_fd, &e) < 0)
				return out_fail(&e);
			if (fcntl(so.s6_fd, F_SETFD, FD_CLOEXEC) < 0)
				return err_sys(&e, ERR_USAGE, "--notification-fd %d is not open",
				    so.s6_fd), out_fail(&e);
		} else if (strcmp(argv[i], "--timeout") == 0) {
			if (arg_seconds("--timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &so.ready_timeout_s, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--ready") == 0 && i + 1 < argc) {
			ready = argv[++i];
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to run", argv[i]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	/* the command is recorded under the lifecycle lock, as start does;
	 * the lock is not held while supervising (stop must take it) */
	lock = cmd_lock(&h, "run", LOCK_TIMEOUT_DEFAULT_S, &e);
	if (lock < 0)
		return out_fail(&e);
	if (run_prepare(&h, ncmd, cmd, ready, &e) < 0)
		return out_fail(&e);
	lock_release(lock);
	rc = supervisor_run(&h, &so, &e);
	if (rc != 0 && e.code != ERR_NONE)
		return out_fail(&e);
	return rc;
}
