/* harness.c -- see harness.h. */
#include "core/harness.h"
#include "core/base/fmt.h"
#include "platform/compat.h"
#include "platform/reactor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_AFTER_MS 5000

struct hwait {
	struct reactor r;
	pid_t pid;
	int done;
	int status;
	int kill_h;
	struct harness_check *res;
};

static void
on_kill(struct reactor *r, int h, int ev, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h; (void)ev;
	w->kill_h = -1;
	kill(-w->pid, SIGKILL);
}

/* TERM (and CONT) to the check's group, KILL later. */
static void
end_check(struct hwait *w)
{
	kill(-w->pid, SIGTERM);
	kill(-w->pid, SIGCONT);
	if (w->kill_h < 0)
		w->kill_h = reactor_timer_add(&w->r, KILL_AFTER_MS, on_kill, w);
}

static void
on_exit_cb(struct reactor *r, int h, int status, void *arg)
{
	struct hwait *w = arg;

	(void)h;
	w->done = 1;
	w->status = status;
	/* what the check left in its group goes with it */
	kill(-w->pid, SIGKILL);
	reactor_stop(r);
}

static void
on_sig(struct reactor *r, int h, int sig, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h;
	if (w->res->signal == 0)
		w->res->signal = sig;
	end_check(w);
}

static void
on_deadline(struct reactor *r, int h, int ev, void *arg)
{
	struct hwait *w = arg;

	(void)r; (void)h; (void)ev;
	w->res->timed_out = 1;
	end_check(w);
}

int
harness_run(char *const argv[], char *const env[], int timeout_s,
    struct harness_check *res, struct err *e)
{
	static struct hwait w;
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	sigset_t mask;
	uint64_t t0;
	pid_t pid;

	memset(res, 0, sizeof *res);
	memset(&w, 0, sizeof w);
	w.res = res;
	w.kill_h = -1;
	if (reactor_init(&w.r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (reactor_signal_add(&w.r, sigs[i], on_sig, &w) < 0) {
			reactor_fini(&w.r);
			return err_sys(e, ERR_IO, "cannot watch signals");
		}
	reactor_child_sigmask(&w.r, &mask);
	t0 = reactor_clock_ms();
	pid = fork();
	if (pid < 0) {
		reactor_fini(&w.r);
		return err_sys(e, ERR_SPAWN, "cannot fork the check");
	}
	if (pid == 0) {
		(void)setpgid(0, 0);
		for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
			signal(sigs[i], SIG_DFL);
		sigprocmask(SIG_SETMASK, &mask, NULL);
		(void)dup2(2, 1);
		for (int i = 0; env != NULL && env[i] != NULL; i++)
			(void)putenv(env[i]);
		execvp(argv[0], argv);
		fmt_fd(2, "appd with: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	(void)setpgid(pid, pid);
	w.pid = pid;
	if (reactor_child_add(&w.r, pid, on_exit_cb, &w) < 0) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		reactor_fini(&w.r);
		return err_sys(e, ERR_IO, "cannot watch the check");
	}
	if (timeout_s > 0)
		reactor_timer_add(&w.r, (uint64_t)timeout_s * 1000, on_deadline, &w);
	while (!w.done)
		if (reactor_run_once(&w.r, -1) < 0 && errno != EINTR)
			break;
	res->status = w.status;
	res->duration_ms = (int64_t)(reactor_clock_ms() - t0);
	reactor_fini(&w.r);
	return 0;
}

static int
remove_at(int dfd, const char *name, int depth)
{
	struct stat st;
	int fd, rc = 0;
	DIR *d;
	struct dirent *de;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	if (depth > 64) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (remove_at(dirfd(d), de->d_name, depth + 1) < 0)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

int
harness_remove_tree(const char *path)
{
	return remove_at(AT_FDCWD, path, 0);
}
