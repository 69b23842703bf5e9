/* lifecycle.c -- see lifecycle.h. */
#include "core/lifecycle.h"
#include "core/base/fmt.h"
#include "core/control.h"
#include "core/unmanaged.h"
#include "core/supervisor.h"
#include "core/update/updater.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"
#include "core/logcap.h"
#include "core/sockprep.h"
#include "core/supervisor.h"
#include "platform/dirwatch.h"
#include "platform/proc.h"
#include "platform/reactor.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ESCALATE_MARGIN_MS 5000
#define KILL_WAIT_MS 4000

/* ---- small waits on one reactor ---- */

struct waiter {
	struct reactor r;
	int done;          /* the awaited event happened */
	int timed_out;
};

static void
w_timeout(struct reactor *r, int h, int ev, void *arg)
{
	struct waiter *w = arg;

	(void)h; (void)ev;
	w->timed_out = 1;
	reactor_stop(r);
}

static void
w_exit(struct reactor *r, int h, int ev, void *arg)
{
	struct waiter *w = arg;

	(void)h; (void)ev;
	w->done = 1;
	reactor_stop(r);
}

/* Kernels without pidfd (before 5.3, or a seccomp filter refusing it)
 * give no exit event for a process that is not our child: there, and
 * only there, the exit is checked on a timer that backs off from 1 ms to
 * 50 ms, bounded by the same deadline. */
struct pid_poll {
	struct waiter *w;
	pid_t pid;
	uint64_t every;
};

static void
w_poll(struct reactor *r, int h, int ev, void *arg)
{
	struct pid_poll *p = arg;
	struct proc_info pi;

	(void)h; (void)ev;
	if (proc_read(p->pid, &pi) != PROC_ALIVE) {
		p->w->done = 1;
		reactor_stop(r);
		return;
	}
	p->every = p->every * 2 > 50 ? 50 : p->every * 2;
	reactor_timer_add(r, p->every, w_poll, p);
}

/* Wait until process `pid` exits (a zombie counts) or `ms` pass.
 * 1 exited, 0 timed out, -1 error. */
static int
wait_pid_exit(pid_t pid, int64_t ms)
{
	struct waiter w;
	struct pid_poll poll = { &w, pid, 1 };
	int r;

	memset(&w, 0, sizeof w);
	if (reactor_init(&w.r) < 0)
		return -1;
	if (reactor_pid_add(&w.r, pid, w_exit, &w) < 0) {
		if (errno == ESRCH) {
			reactor_fini(&w.r);
			return 1;
		}
		if (errno != ENOSYS) {
			reactor_fini(&w.r);
			return -1;
		}
		reactor_timer_add(&w.r, 0, w_poll, &poll);
	}
	reactor_timer_add(&w.r, (uint64_t)(ms > 0 ? ms : 0), w_timeout, &w);
	while (!w.done && !w.timed_out)
		if (reactor_run_once(&w.r, -1) < 0)
			break;
	reactor_fini(&w.r);
	r = w.done ? 1 : 0;
	return r;
}

/* ---- orphans ---- */

/* The orphaned server's descendants: nobody adopted them (the supervisor
 * that was their subreaper is gone), so they are found by the tree walk
 * below the server and in its process group (proc_tree), before any
 * signal, while the parent links still hold.  `sig` (TERM brings a CONT)
 * by identity to each of `tree` still alive; how many are. */
static int
signal_tree(struct proc_info *tree, int n, int sig)
{
	int live = 0;

	for (int i = 0; i < n; i++) {
		if (proc_matches(tree[i].pid, tree[i].start_ticks, NULL) != 1)
			continue;
		live++;
		(void)proc_signal_ident(tree[i].pid, tree[i].start_ticks, sig, 0);
		if (sig == SIGTERM)
			(void)proc_signal_ident(tree[i].pid, tree[i].start_ticks, SIGCONT, 0);
	}
	return live;
}

/* Wait until each of `tree` has exited or the monotonic `deadline` (ms). */
static void
wait_tree(const struct proc_info *tree, int n, int64_t deadline)
{
	for (int i = 0; i < n; i++) {
		int64_t left = deadline - (int64_t)reactor_clock_ms();
		if (left <= 0)
			return;
		if (proc_matches(tree[i].pid, tree[i].start_ticks, NULL) == 1)
			(void)wait_pid_exit(tree[i].pid, left);
	}
}

int
lc_kill_orphan(const struct home *h, int grace_s, int *killed, struct err *e)
{
	enum pidfile_state st;
	struct pid_record rec;
	int r;

	*killed = 0;
	r = pidfile_is_starting_or_running(h->srv_pid, &st, &rec, e);
	if (r <= 0)
		return r;
	if (st == PIDFILE_STARTING) {
		if (pidfile_wait_reservation(h->srv_pid, PIDFILE_LOCK_TIMEOUT_MS, e) < 0)
			return -1;
		return lc_kill_orphan(h, grace_s, killed, e);
	}
	/* an active record and no supervisor: the server tree was left
	 * behind (supervisor SIGKILLed); it is ours by identity */
	*killed = 1;
	{
		struct proc_info tree[64];
		pid_t root = (pid_t)rec.pid;
		int64_t deadline = (int64_t)reactor_clock_ms() + (int64_t)grace_s * 1000;
		int n = proc_tree(&root, 1, rec.pgid > 1 ? (pid_t)rec.pgid : 0, 0, tree, 64);

		if (n < 0)
			n = 0;
		if (proc_signal_ident((pid_t)rec.pid, rec.start_ticks, SIGTERM, 0) == 0) {
			if (rec.pgid > 1) {
				proc_signal_group((pid_t)rec.pgid, SIGTERM);
				proc_signal_group((pid_t)rec.pgid, SIGCONT);
			}
			signal_tree(tree, n, SIGTERM);
			if (wait_pid_exit((pid_t)rec.pid, (int64_t)grace_s * 1000) == 0) {
				proc_signal_ident((pid_t)rec.pid, rec.start_ticks, SIGKILL, 0);
				wait_pid_exit((pid_t)rec.pid, KILL_WAIT_MS);
			}
		}
		/* what remains of the tree has the rest of the grace period,
		 * then one KILL_WAIT_MS for all of it: one deadline each */
		wait_tree(tree, n, deadline);
		if (signal_tree(tree, n, SIGKILL) > 0)
			wait_tree(tree, n, (int64_t)reactor_clock_ms() + KILL_WAIT_MS);
	}
	/* stragglers in its group go with it (the group id cannot be reused
	 * while any member lives) */
	if (rec.pgid > 1)
		proc_signal_group((pid_t)rec.pgid, SIGKILL);
	if (proc_matches((pid_t)rec.pid, rec.start_ticks, rec.boot_id) == 1) {
		err_ctx_num(e, "pid", rec.pid);
		return err_set(e, ERR_STOP_TIMEOUT,
		    "timed out waiting for orphaned app-server %ld to stop", rec.pid);
	}
	{
		struct pid_record cur;
		return pidfile_refresh_after_stale(h->srv_pid, &rec, &st, &cur, e) < 0 ? -1 : 0;
	}
}

int
lc_supervisor(const struct home *h, struct pid_record *rec, struct err *e)
{
	enum pidfile_state st;
	int r;

	for (int k = 0; k < 3; k++) {
		r = pidfile_is_starting_or_running(h->sup_pid, &st, rec, e);
		if (r <= 0)
			return r;
		if (st == PIDFILE_RUNNING)
			return 1;
		/* a reservation in flight: wait for it to resolve */
		if (pidfile_wait_reservation(h->sup_pid, PIDFILE_LOCK_TIMEOUT_MS, e) < 0)
			return -1;
	}
	return err_set(e, ERR_BUSY, "supervisor pid file %s keeps changing", h->sup_pid);
}

/* ---- waiting on a running supervisor ---- */

struct dir_wait {
	struct waiter w;
	int dw_fd;
	int sup_gone;
	int (*check)(void *arg);
	void *arg;
	/* optional: the supervisor's control socket watch (core/control.h);
	 * each record it sends goes to *live, *have_live set */
	struct ctl_watch *cw;
	struct sup_status *live;
	int *have_live;
};

static void
dwt_watch(struct reactor *r, int h, int ev, void *arg)
{
	struct dir_wait *dw = arg;
	int rc;

	(void)ev;
	rc = ctl_watch_read(dw->cw, dw->live);
	if (rc == 1)
		*dw->have_live = 1;
	if (rc < 0) {
		/* the supervisor closed it: only the files are left */
		reactor_del(r, h);
		close(dw->cw->fd);
		dw->cw->fd = -1;
	}
	if (rc != 0 && dw->check(dw->arg)) {
		dw->w.done = 1;
		reactor_stop(r);
	}
}

static void
dwt_dir(struct reactor *r, int h, int ev, void *arg)
{
	struct dir_wait *dw = arg;

	(void)h; (void)ev;
	/* drain first: a change after this is a new event, never lost */
	dirwatch_drain(dw->dw_fd);
	if (dw->check(dw->arg)) {
		dw->w.done = 1;
		reactor_stop(r);
	}
}

static void
dwt_sup_exit(struct reactor *r, int h, int ev, void *arg)
{
	struct dir_wait *dw = arg;

	(void)h; (void)ev;
	dw->sup_gone = 1;
	reactor_stop(r);
}

/* lc_wait_dir with `dw`'s check, arg and optional watch set. */
static int
wait_dir(struct dir_wait *dw, const char *dir, const struct pid_record *sup, int timeout_ms,
    struct err *e)
{
	int (*check)(void *) = dw->check;
	void *arg = dw->arg;
	int rc;

	if (check(arg))
		return 1;
	if (reactor_init(&dw->w.r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	dw->dw_fd = dirwatch_open(dir);
	if (dw->dw_fd < 0) {
		reactor_fini(&dw->w.r);
		return err_sys(e, ERR_IO, "cannot watch %s", dir);
	}
	reactor_io_add(&dw->w.r, dw->dw_fd, REACTOR_READ, dwt_dir, dw);
	if (dw->cw != NULL && dw->cw->fd >= 0 &&
	    reactor_io_add(&dw->w.r, dw->cw->fd, REACTOR_READ, dwt_watch, dw) < 0) {
		close(dw->cw->fd);
		dw->cw->fd = -1;
	}
	if (reactor_pid_add(&dw->w.r, (pid_t)sup->pid, dwt_sup_exit, dw) < 0 && errno == ESRCH)
		dw->sup_gone = 1;
	reactor_timer_add(&dw->w.r, (uint64_t)timeout_ms, w_timeout, &dw->w);
	/* re-check after arming the watch: a change in between is not lost */
	if (check(arg))
		dw->w.done = 1;
	while (!dw->w.done && !dw->w.timed_out && !dw->sup_gone)
		if (reactor_run_once(&dw->w.r, -1) < 0)
			break;
	reactor_fini(&dw->w.r);
	dirwatch_close(dw->dw_fd);
	/* what the supervisor wrote before it went counts */
	rc = dw->w.done || check(arg) ? 1 : dw->sup_gone ? -2 : 0;
	return rc;
}

int
lc_wait_dir(const char *dir, const struct pid_record *sup, int timeout_ms,
    int (*check)(void *arg), void *arg, struct err *e)
{
	static struct dir_wait dw;

	memset(&dw, 0, sizeof dw);
	dw.check = check;
	dw.arg = arg;
	return wait_dir(&dw, dir, sup, timeout_ms, e);
}

struct ready_wait {
	const struct home *h;
	long sup_pid;
	int after;
	int after_failures;     /* spawn failures before the wait; -1: ignore */
	struct sup_status st;
	int failed;
	int exited;             /* the new incarnation died before ready */
	int spawn_failed;       /* the new incarnation could not be started */
	struct ctl_watch cw;    /* the supervisor's live records */
	struct sup_status live;
	int have_live;
};

static int
rw_check(void *arg)
{
	struct ready_wait *rw = arg;
	struct err e;

	/* the supervisor's memory first: its files may be behind (a full
	 * or read-only disk), its answers are not */
	if (rw->have_live && rw->live.sup_pid == rw->sup_pid) {
		rw->st = rw->live;
	} else {
		err_clear(&e);
		if (status_read(rw->h->status, &rw->st, &e) != 0)
			return 0;
	}
	if (rw->st.incarnation > rw->after && rw->st.ready)
		return 1;
	/* the server could not even be started (its pidfile, fork, exec) */
	if (rw->after_failures >= 0 && rw->st.spawn_failures > rw->after_failures) {
		rw->failed = rw->spawn_failed = 1;
		return 1;
	}
	if (strcmp(rw->st.state, "stopped") == 0) {
		rw->failed = 1;
		return 1;
	}
	/* the incarnation this wait is about has exited and the restart
	 * policy took over: waiting on would only watch a crash loop */
	if (rw->st.incarnation > rw->after && !rw->st.ready && rw->st.has_last_exit &&
	    strcmp(rw->st.state, "backoff") == 0) {
		rw->failed = rw->exited = 1;
		return 1;
	}
	return 0;
}

static void
fill_tail(const struct home *h, struct err *e)
{
	static char tail[ERR_TAIL_MAX + 1];

	if (log_tail(h->srv_log, ERR_TAIL_MAX, tail, sizeof tail) == 0)
		e->tail = tail;
}

int
lc_wait_ready(const struct home *h, const struct pid_record *sup, int after_incarnation,
    int after_failures, int timeout_ms, struct sup_status *st, struct err *e)
{
	static struct ready_wait rw;
	static struct dir_wait dw;
	int r;

	memset(&rw, 0, sizeof rw);
	rw.h = h;
	rw.sup_pid = sup->pid;
	rw.after = after_incarnation;
	rw.after_failures = after_failures;
	memset(&dw, 0, sizeof dw);
	dw.check = rw_check;
	dw.arg = &rw;
	/* no watch (an older supervisor, all watch slots taken): the files */
	if (ctl_watch_open(&rw.cw, h->ctl_sock) == 0) {
		dw.cw = &rw.cw;
		dw.live = &rw.live;
		dw.have_live = &rw.have_live;
	}
	r = wait_dir(&dw, h->state, sup, timeout_ms, e);
	if (rw.cw.fd >= 0)
		close(rw.cw.fd);
	rw.cw.fd = -1;
	if (r == -1)
		return -1;
	*st = rw.st;
	if (r == 1 && !rw.failed)
		return 0;
	fill_tail(h, e);
	err_ctx_str(e, "socketPath", h->socket);
	if (rw.spawn_failed)
		return err_set(e, ERR_SPAWN, "the app-server could not be started: %s",
		    rw.st.spawn_error);
	if (rw.exited) {
		if (rw.st.last_exit_signal > 0) {
			err_ctx_num(e, "signal", rw.st.last_exit_signal);
			return err_set(e, ERR_EXITED, "app-server was killed by signal %d before "
			    "it was ready", rw.st.last_exit_signal);
		}
		err_ctx_num(e, "exitCode", rw.st.last_exit_code);
		return err_set(e, ERR_EXITED, "app-server exited with status %d before it was "
		    "ready", rw.st.last_exit_code);
	}
	if (r == 0)
		return err_set(e, ERR_NOT_READY,
		    "app-server did not become ready on %s within %d ms (state %s: %s)",
		    h->socket, timeout_ms, rw.st.state, rw.st.message);
	return err_set(e, ERR_NOT_READY, "the supervisor stopped before the app-server was ready: %s",
	    rw.st.message[0] ? rw.st.message : "no reason recorded");
}

/* ---- launching the supervisor ---- */

struct launch {
	struct waiter w;
	int fd;
	char line[1024];
	size_t len;
	int eof;
	int child_done;
	int child_status;
};

static void
l_read(struct reactor *r, int h, int ev, void *arg)
{
	struct launch *l = arg;
	ssize_t n;

	(void)ev;
	n = fd_read(l->fd, l->line + l->len, sizeof l->line - 1 - l->len);
	if (n > 0) {
		l->len += (size_t)n;
		l->line[l->len] = '\0';
		if (memchr(l->line, '\n', l->len) == NULL && l->len < sizeof l->line - 1)
			return;
	}
	if (n <= 0)
		l->eof = 1;
	reactor_del(r, h);
	l->w.done = 1;
	reactor_stop(r);
}

static void
l_child(struct reactor *r, int h, int status, void *arg)
{
	struct launch *l = arg;

	(void)r; (void)h;
	l->child_done = 1;
	l->child_status = status;
}

/* In the forked child, before the supervisor runs: report why it cannot
 * start on the ready pipe (the line read_report parses, as the supervisor's
 * own report_fail writes it), then exit 127.  `what` names the step;
 * errno is the cause. */
static void
launch_fail(int fd, const char *what, const char *path)
{
	int en = errno;

	fmt_fd(fd, "fail io -1 0 cannot start the supervisor: %s %s: %s\n", what, path,
	    strerror(en));
	_exit(127);
}

static pid_t
fork_supervisor(const struct home *h, int ready_wr, int timeout_s, struct err *e)
{
	char exe[PATH_MAX], tmo[32];
	pid_t pid;

	if (proc_self_exe(exe, sizeof exe) < 0)
		return err_sys(e, ERR_SPAWN, "cannot find our own executable"), -1;
	fmt_n(tmo, sizeof tmo, "%d", timeout_s);
	pid = fork();
	if (pid < 0)
		return err_sys(e, ERR_SPAWN, "cannot fork the supervisor"), -1;
	if (pid == 0) {
		char *argv[] = { "appd", "supervise", "--ready-fd", "3", "--ready-timeout",
			tmo, "--reserved", NULL };
		sigset_t none;
		int fd;

		setsid();
		umask(077);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (ready_wr != 3) {
			if (dup2(ready_wr, 3) < 0)
				launch_fail(ready_wr, "placing the ready pipe on", "fd 3");
		} else {
			fcntl(3, F_SETFD, 0);
		}
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || dup2(fd, 0) < 0)
			launch_fail(3, "opening", "/dev/null");
		{
			/* a FIFO there must not block us; only a regular file is
			 * a log */
			struct stat st;
			fd = fs_open_regular(h->sup_log, O_WRONLY | O_CREAT | O_APPEND |
			    O_NOFOLLOW, 0600, &st);
			if (fd < 0)
				launch_fail(3, errno == EINVAL ? "using its log (not a regular "
				    "file)" : "opening its log", h->sup_log);
		}
		if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			launch_fail(3, "setting up its log", h->sup_log);
		/* every other fd of ours is CLOEXEC; so are inherited strays,
		 * at any number */
		compat_cloexec_from(4);
		if (chdir("/") < 0)
			launch_fail(3, "changing to", "/");
		setenv("APPD_HOME", h->root, 1);
		proc_exec_self(argv, exe);
		fmt_fd(2, "appd: cannot execute %s for the supervisor: %s\n", exe, strerror(errno));
		launch_fail(3, "executing", exe);
	}
	return pid;
}

/* Read the supervisor's ready line from `fd`; on failure wait for the
 * supervisor `pid` to be gone, so nothing is left running when we report. */
static int
read_report(const struct home *h, const struct settings *s, int timeout_s, int fd, pid_t pid,
    struct start_result *res, struct err *e)
{
	static struct launch l;
	struct sup_report rep;
	int64_t wait_ms;

	memset(&l, 0, sizeof l);
	l.fd = fd;
	if (reactor_init(&l.w.r) < 0) {
		close(fd);
		return err_sys(e, ERR_IO, "cannot create the event loop");
	}
	reactor_io_add(&l.w.r, l.fd, REACTOR_READ, l_read, &l);
	reactor_child_add(&l.w.r, pid, l_child, &l);
	/* the supervisor has its own readiness deadline and grace; this one
	 * only bounds a supervisor that hangs */
	wait_ms = (int64_t)timeout_s * 1000 + (int64_t)s->grace_s * 1000 + 15000;
	reactor_timer_add(&l.w.r, (uint64_t)wait_ms, w_timeout, &l.w);
	while (!l.w.done && !l.w.timed_out)
		if (reactor_run_once(&l.w.r, -1) < 0)
			break;
	close(l.fd);
	if (l.w.done && !l.eof && sup_report_parse(l.line, &rep) == 0 && rep.ready) {
		reactor_fini(&l.w.r);
		res->started = 1;
		res->server_pid = rep.server_pid;
		res->sup_pid = pid;
		return 0;
	}
	/* failure: the supervisor tears everything down and exits */
	l.w.timed_out = 0;
	l.w.done = 0;
	if (!l.child_done) {
		reactor_timer_add(&l.w.r, (uint64_t)s->grace_s * 1000 + 10000, w_timeout, &l.w);
		while (!l.child_done && !l.w.timed_out)
			if (reactor_run_once(&l.w.r, -1) < 0)
				break;
	}
	reactor_fini(&l.w.r);
	fill_tail(h, e);
	err_ctx_str(e, "socketPath", h->socket);
	if (l.len > 0 && sup_report_parse(l.line, &rep) == 0) {
		if (rep.exit_signal)
			err_ctx_num(e, "exitSignal", rep.exit_signal);
		else if (rep.exit_code >= 0)
			err_ctx_num(e, "exitCode", rep.exit_code);
		return err_set(e, rep.code, "%s", rep.message);
	}
	if (!l.child_done)
		kill(pid, SIGKILL);
	{
		/* a failed start leaves nothing running: what the dead
		 * supervisor had started is killed by its record's identity */
		struct err oe;
		int killed = 0;
		err_clear(&oe);
		(void)lc_kill_orphan(h, s->grace_s, &killed, &oe);
	}
	if (!l.child_done)
		return err_set(e, ERR_NOT_READY, "the supervisor did not report within %lld ms; "
		    "it was killed, and what it had started (see %s)", (long long)wait_ms,
		    h->sup_log);
	return err_set(e, ERR_OTHER, "the supervisor exited (status %d) without reporting; "
	    "what it had started was stopped; see %s",
	    WIFEXITED(l.child_status) ? WEXITSTATUS(l.child_status) : 128 + WTERMSIG(l.child_status),
	    h->sup_log);
}

/* The seed's reservation around the launch: supervisor.pid is reserved,
 * the supervisor forked, its identity published, then its report read. */
static int
launch(const struct home *h, const struct settings *s, int timeout_s,
    struct start_result *res, struct err *e)
{
	struct pidfile_resv rv;
	struct pid_record other, rec;
	int rp[2], rs;
	pid_t pid;

	rs = pidfile_reserve(h->sup_pid, PIDFILE_LOCK_TIMEOUT_MS, &rv, &other, e);
	if (rs < 0)
		return -1;
	if (rs == 1) {
		/* someone bypassing the lifecycle lock got there first */
		struct sup_status st;
		if (lc_wait_ready(h, &other, 0, -1, timeout_s * 1000, &st, e) < 0)
			return -1;
		res->started = 0;
		res->server_pid = st.server_pid;
		res->sup_pid = other.pid;
		return 0;
	}
	if (compat_pipe(rp, 0) < 0) {
		pidfile_abandon(&rv);
		return err_sys(e, ERR_SPAWN, "cannot create the readiness pipe");
	}
	pid = fork_supervisor(h, rp[1], timeout_s, e);
	close(rp[1]);
	if (pid < 0) {
		close(rp[0]);
		pidfile_abandon(&rv);
		return -1;
	}
	if (pidrec_capture(pid, &rec) < 0) {
		memset(&rec, 0, sizeof rec);
		rec.pid = pid;
		proc_boot_id(rec.boot_id);
	}
	rec.pgid = pid;
	if (pidfile_publish(&rv, &rec, e) < 0) {
		kill(pid, SIGKILL);
		close(rp[0]);
		return -1;
	}
	return read_report(h, s, timeout_s, rp[0], pid, res, e);
}

int
lc_start(const struct home *h, const struct settings *s, int timeout_s,
    struct start_result *res, struct err *e)
{
	struct pid_record sup;
	struct sup_status st;
	int r, killed;

	memset(res, 0, sizeof *res);
	r = lc_supervisor(h, &sup, e);
	if (r < 0)
		return -1;
	if (r == 1 && lc_live(h, &sup, &st) == 0) {
		/* alive but not answering within 1 s (stopped, hung): stale.
		 * Stop it -- CONT, TERM, then KILL -- and start afresh. */
		int stopped;
		res->replaced_stale = 1;
		if (lc_stop(h, s->grace_s, 0, &stopped, e) < 0)
			return -1;
		r = 0;
	}
	if (r == 1) {
		if (lc_wait_ready(h, &sup, 0, -1, timeout_s * 1000, &st, e) < 0)
			return -1;
		res->started = 0;
		res->server_pid = st.server_pid;
		res->sup_pid = sup.pid;
		return 0;
	}
	if (lc_kill_orphan(h, s->grace_s, &killed, e) < 0)
		return -1;
	return launch(h, s, timeout_s, res, e);
}

/* ---- stop ---- */

static int
write_stop_request(const struct home *h, int grace_s)
{
	char path[PATH_MAX], buf[64];

	if (str_fmt(path, sizeof path, "%s/%s", h->state, SUP_STOP_REQUEST) < 0)
		return -1;
	fmt_n(buf, sizeof buf, "{\"graceSeconds\":%d}\n", grace_s);
	return fs_replace(path, buf, strlen(buf), 0600);
}

int
lc_stop(const struct home *h, int grace_s, int explicit_grace, int *stopped, struct err *e)
{
	enum pidfile_state st;
	struct pid_record sup, srv;
	int r, killed = 0, exited;

	*stopped = 0;
	r = lc_supervisor(h, &sup, e);
	if (r < 0)
		return -1;
	if (r == 1) {
		*stopped = 1;
		if (explicit_grace)
			(void)write_stop_request(h, grace_s);
		/* CONT first: a stopped (SIGSTOP) supervisor must see the TERM */
		proc_signal_ident((pid_t)sup.pid, sup.start_ticks, SIGCONT, 0);
		if (proc_signal_ident((pid_t)sup.pid, sup.start_ticks, SIGTERM, 0) < 0 &&
		    errno != ESRCH)
			return err_sys(e, ERR_IO, "failed to signal supervisor %ld", sup.pid);
		exited = wait_pid_exit((pid_t)sup.pid, (int64_t)grace_s * 1000 + ESCALATE_MARGIN_MS);
		if (exited == 0) {
			/* hung supervisor: KILL it and the server's group, by identity */
			struct err e2;
			err_clear(&e2);
			proc_signal_ident((pid_t)sup.pid, sup.start_ticks, SIGKILL, 0);
			if (pidfile_peek(h->srv_pid, &st, &srv, &e2) == 0 && st == PIDFILE_RUNNING &&
			    pidrec_active(&srv) == 1) {
				proc_signal_ident((pid_t)srv.pid, srv.start_ticks, SIGKILL, 0);
				if (srv.pgid > 1)
					proc_signal_group((pid_t)srv.pgid, SIGKILL);
			}
			exited = wait_pid_exit((pid_t)sup.pid, KILL_WAIT_MS);
		}
		if (exited != 1) {
			err_ctx_num(e, "pid", sup.pid);
			return err_set(e, ERR_STOP_TIMEOUT, "timed out waiting for supervisor %ld to stop",
			    sup.pid);
		}
		/* a clean supervisor removed its record; after a KILL it did not */
		(void)pidfile_refresh_after_stale(h->sup_pid, &sup, &st, &srv, e);
	}
	if (lc_kill_orphan(h, grace_s, &killed, e) < 0)
		return -1;
	if (killed)
		*stopped = 1;
	return 0;
}

int
lc_unmanaged(const struct home *h, struct err *e)
{
	struct pid_record rec;
	enum pidfile_state st;
	int r;

	r = lc_supervisor(h, &rec, e);
	if (r != 0)
		return r < 0 ? -1 : 0;
	r = pidfile_is_starting_or_running(h->srv_pid, &st, &rec, e);
	if (r != 0)
		return r < 0 ? -1 : 0;     /* an orphan of ours, not unmanaged */
	return sock_probe(h->socket) == 1;
}

int
lc_stop_unmanaged(const struct home *h, const struct unmanaged *u, int grace_s,
    int *killed, struct err *e)
{
	static struct unmanaged now;
	pid_t pid = (pid_t)u->pid;
	int r;

	*killed = 0;
	err_ctx_obj(e, "unmanaged", u->json);
	if (u->pid <= 0)
		return err_set(e, ERR_UNMANAGED, "cannot tell which process listens on %s "
		    "(this OS does not say): nothing was stopped", h->socket);
	if (u->uid != (long)geteuid())
		return err_set(e, ERR_UNMANAGED, "the unmanaged server (pid %ld) runs as uid "
		    "%ld, not as this user (uid %ld): it was not stopped", u->pid, u->uid,
		    (long)geteuid());
	/* the same process must still be the listener when it is signalled */
	r = unmanaged_identify(h->socket, &now, e);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;               /* it went away by itself */
	if (now.pid != u->pid || now.start_ticks != u->start_ticks) {
		err_ctx_obj(e, "unmanaged", now.json);
		return err_set(e, ERR_UNMANAGED, "the process listening on %s changed (pid %ld, "
		    "was %ld): nothing was signalled", h->socket, now.pid, u->pid);
	}
	if (proc_signal_ident(pid, u->start_ticks, SIGTERM, 0) < 0)
		return errno == ESRCH ? 0 : err_sys(e, ERR_IO, "cannot signal pid %ld", u->pid);
	(void)proc_signal_ident(pid, u->start_ticks, SIGCONT, 0);
	if (wait_pid_exit(pid, (int64_t)grace_s * 1000) == 1)
		return 0;
	if (proc_signal_ident(pid, u->start_ticks, SIGKILL, 0) < 0)
		return errno == ESRCH ? 0 : err_sys(e, ERR_IO, "cannot signal pid %ld", u->pid);
	*killed = 1;
	if (wait_pid_exit(pid, 5000) == 1)
		return 0;
	return err_set(e, ERR_STOP_TIMEOUT, "the unmanaged server (pid %ld) did not exit "
	    "5 s after SIGKILL", u->pid);
}

int
lc_live(const struct home *h, const struct pid_record *sup, struct sup_status *st)
{
	struct err e;
	int r;

	err_clear(&e);
	r = ctl_query_status(h->ctl_sock, CTL_TIMEOUT_MS, st, &e);
	if (r == 1 && st->sup_pid != sup->pid)
		return 0;       /* a record, but not of this supervisor */
	return r;
}

int
lc_restart_in_place(const struct home *h, const struct pid_record *sup, int grace_s,
    int timeout_s, struct sup_status *st, struct err *e)
{
	struct sup_status now;
	int before = 0, failures = -1;

	if (lc_live(h, sup, &now) == 1) {
		before = now.incarnation;
		failures = now.spawn_failures;
	} else if (status_read(h->status, &now, e) == 0) {
		before = now.incarnation;
	}
	err_clear(e);
	if (proc_signal_ident((pid_t)sup->pid, sup->start_ticks, SIGHUP, 0) < 0)
		return err_sys(e, ERR_IO, "failed to signal supervisor %ld", sup->pid);
	if (lc_wait_ready(h, sup, before, failures, (grace_s + timeout_s) * 1000 + 5000,
	    st, e) == 0)
		return 0;
	if (e->code == ERR_EXITED || e->code == ERR_SPAWN) {
		/* as a failed start: nothing is left running (a crash loop of
		 * the new command would be) */
		struct err se;
		int stopped = 0;
		size_t n = strlen(e->msg);

		err_clear(&se);
		if (lc_stop(h, grace_s, 0, &stopped, &se) == 0 && n < sizeof e->msg)
			fmt_n(e->msg + n, sizeof e->msg - n, "; the supervisor was stopped, "
			    "nothing is left running");
	}
	return -1;
}

int
lc_view(const struct home *h, struct lc_view *v, struct err *e)
{
	enum pidfile_state sst, vst;
	int q = -1;

	memset(v, 0, sizeof *v);
	if (pidfile_peek(h->sup_pid, &sst, &v->sup, e) < 0)
		return -1;
	v->sup_recorded = sst == PIDFILE_RUNNING;
	if (v->sup_recorded) {
		int a = pidrec_active(&v->sup);
		v->sup_active = a == 1;
		v->foreign = a < 0 && errno == EREMOTE;
	}
	if (pidfile_peek(h->srv_pid, &vst, &v->srv, e) < 0)
		return -1;
	if (vst == PIDFILE_RUNNING)
		v->srv_active = pidrec_active(&v->srv) == 1;
	if (v->sup_active) {
		q = lc_live(h, &v->sup, &v->st);
		if (q == 1) {
			v->have_st = v->fresh = 1;
		} else {
			struct err fe;
			err_clear(&fe);
			v->have_st = status_read(h->status, &v->st, &fe) == 0 &&
			    v->st.sup_pid == v->sup.pid;
		}
	}
	if (sst == PIDFILE_STARTING)
		v->state = "starting";
	else if (v->foreign)
		v->state = "otherHost";
	else if (!v->sup_active)
		v->state = v->srv_active ? "orphaned" : "stopped";
	else if (v->fresh)
		v->state = v->st.state;
	else if (v->have_st || q == 0)
		v->state = "stale";
	else
		v->state = "starting";
	return 0;
}

int
lc_other_hosts(const struct home *h, struct sup_status *out, int cap)
{
	char path[HOME_PATH_MAX + MACHINE_ID_MAX + 32];
	struct err e;
	struct dirent *d;
	DIR *dir;
	int n = 0;

	if (h->per_host && n < cap) {
		fmt_n(path, sizeof path, "%s/state/status.json", h->root);
		err_clear(&e);
		if (status_read(path, &out[n], &e) == 0 && out[n].server_id[0] != '\0')
			n++;
	}
	dir = opendir(h->hosts);
	if (dir == NULL)
		return n;
	while (n < cap && (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || strcmp(d->d_name, h->machine) == 0)
			continue;
		fmt_n(path, sizeof path, "%s/%s/state/status.json", h->hosts, d->d_name);
		err_clear(&e);
		if (status_read(path, &out[n], &e) == 0 && out[n].server_id[0] != '\0')
			n++;
	}
	closedir(dir);
	return n;
}

/* ---- an update through the running supervisor ---- */

struct req_wait {
	const char *state_path;
	const char *id;
	struct upd_state *st;
};

/* Has packages/updater.json answered our request? */
static int
req_answered(void *arg)
{
	struct req_wait *w = arg;
	struct err e;

	err_clear(&e);
	return updstate_read(w->state_path, w->st, &e) == 0 &&
	    strcmp(w->st->request_id, w->id) == 0;
}

int
lc_update_request(const struct home *h, const struct pkgdir *pk, const struct pid_record *sup,
    int check, int fetch_timeout_s, int timeout_s, int locked, struct upd_state *st,
    struct err *e)
{
	char id[64], path[HOME_PATH_MAX + 32], req[256];
	struct req_wait w = { pk->state, id, st };
	int r;

	str_fmt(id, sizeof id, "%ld-%lld", (long)getpid(), (long long)wall_ms());
	str_fmt(path, sizeof path, "%s/%s", h->state, SUP_UPDATE_REQUEST);
	str_fmt(req, sizeof req, "{\"id\":\"%s\",\"checkOnly\":%s,\"fetchTimeoutMs\":%lld,"
	    "\"lockedBy\":%ld}\n", id, check ? "true" : "false", (long long)fetch_timeout_s * 1000,
	    locked ? (long)getpid() : 0L);
	if (fs_replace(path, req, strlen(req), 0600) < 0)
		return err_sys(e, ERR_IO, "cannot write %s", path);
	if (proc_signal_ident((pid_t)sup->pid, sup->start_ticks, SIGUSR1, 0) < 0)
		return err_sys(e, ERR_IO, "cannot signal the supervisor (pid %ld)", sup->pid);
	r = lc_wait_dir(pk->root, sup, timeout_s * 1000, req_answered, &w, e);
	if (r == 1)
		return 0;
	if (r == -2)
		return err_set(e, ERR_NOT_RUNNING, "the supervisor (pid %ld) exited before "
		    "answering the update request", sup->pid);
	if (r == 0)
		return err_set(e, ERR_OTHER, "no answer from the supervisor (pid %ld) to the "
		    "update request within %d s", sup->pid, timeout_s);
	return -1;
}
