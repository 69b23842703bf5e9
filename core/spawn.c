/* spawn.c -- see spawn.h. */
#include "core/spawn.h"
#include "core/base/fmt.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void
child_fail(int efd)
{
	int e = errno;

	(void)!write(efd, &e, sizeof e);
	_exit(127);
}

/* In the child: place `fd` at `target` without CLOEXEC. */
static int
place(int fd, int target)
{
	if (fd == target)
		return fcntl(fd, F_SETFD, 0);
	return dup2(fd, target) < 0 ? -1 : 0;
}

/* The fork/exec sequence in the order the child must do it; splitting
 * it would scatter the async-signal-safe part across functions. */
pid_t
spawn_server(const struct spawn_opts *o, struct err *e)
{
	int ep[2], err_no = 0;
	ssize_t n;
	pid_t pid;

	if (compat_pipe(ep, 0) < 0)
		return err_sys(e, ERR_SPAWN, "cannot create a pipe"), -1;
	pid = fork();
	if (pid < 0) {
		close(ep[0]);
		close(ep[1]);
		return err_sys(e, ERR_SPAWN, "cannot fork"), -1;
	}
	if (pid == 0) {
		struct sigaction sa;
		int sig, devnull, lfd = o->listen_fd, nfd = o->notify_fd, out = o->out_fd;
		int efd = ep[1];
		char num[32];

		setpgid(0, 0);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++)
			(void)sigaction(sig, &sa, NULL);
		sigprocmask(SIG_SETMASK, o->sigmask, NULL);
		/* move our fds above the targets so dup2 cannot clobber them */
		if ((efd = fcntl(efd, F_DUPFD_CLOEXEC, 10)) < 0 ||
		    (out >= 0 && (out = fcntl(out, F_DUPFD_CLOEXEC, 10)) < 0) ||
		    (lfd >= 0 && (lfd = fcntl(lfd, F_DUPFD_CLOEXEC, 10)) < 0) ||
		    (nfd >= 0 && (nfd = fcntl(nfd, F_DUPFD_CLOEXEC, 10)) < 0))
			child_fail(ep[1]);
		if (!o->stdin_inherit) {
			devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (devnull < 0 || place(devnull, 0) < 0)
				child_fail(efd);
		}
		if (out >= 0 && (place(out, 1) < 0 || place(out, 2) < 0))
			child_fail(efd);
		if (lfd >= 0) {
			if (place(lfd, 3) < 0)
				child_fail(efd);
			fmt_n(num, sizeof num, "%ld", (long)getpid());
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_PID", num, 1);
			setenv("LISTEN_FDNAMES", "app-server", 1);
		} else {
			unsetenv("LISTEN_FDS");
			unsetenv("LISTEN_PID");
			unsetenv("LISTEN_FDNAMES");
		}
		if (nfd >= 0) {
			int target = lfd >= 0 ? 4 : 3;
			if (place(nfd, target) < 0)
				child_fail(efd);
			fmt_n(num, sizeof num, "%d", target);
			setenv("APPD_NOTIFY_FD", num, 1);
		} else {
			unsetenv("APPD_NOTIFY_FD");
		}
		if (o->notify_socket)
			setenv("NOTIFY_SOCKET", o->notify_socket, 1);
		else
			unsetenv("NOTIFY_SOCKET");
		if (o->watchdog_usec > 0 && o->notify_socket) {
			fmt_n(num, sizeof num, "%llu", o->watchdog_usec);
			setenv("WATCHDOG_USEC", num, 1);
			fmt_n(num, sizeof num, "%ld", (long)getpid());
			setenv("WATCHDOG_PID", num, 1);
		} else {
			unsetenv("WATCHDOG_USEC");
			unsetenv("WATCHDOG_PID");
		}
		for (const char *const *p = o->env_add; p && *p; p++)
			putenv((char *)*p);
		if (o->cwd && chdir(o->cwd) < 0)
			child_fail(efd);
		/* nothing else reaches the server, whatever our own parent left
		 * open (a service manager, a shell with fd 1500) */
		compat_cloexec_from(nfd >= 0 ? (lfd >= 0 ? 5 : 4) : lfd >= 0 ? 4 : 3);
		execvp(o->argv[0], o->argv);
		child_fail(efd);
	}
	close(ep[1]);
	do
		n = read(ep[0], &err_no, sizeof err_no);
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n > 0) {
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		errno = err_no;
		err_ctx_str(e, "command", o->argv[0]);
		err_sys(e, ERR_SPAWN, "failed to start %s", o->argv[0]);
		return -1;
	}
	/* the parent sets the group too, so it exists before anyone signals it */
	(void)setpgid(pid, pid);
	return pid;
}
