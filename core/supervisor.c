/* supervisor.c -- see supervisor.h. */
#include "core/supervisor.h"
#include "platform/compat.h"
#include "core/version.h"
#include "core/net/wsprobe.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/lock.h"
#include "core/logcap.h"
#include "core/pidfile.h"
#include "core/settings.h"
#include "core/sockprep.h"
#include "core/spawn.h"
#include "core/status.h"
#include "core/update/updater.h"
#include "core/update/sig.h"
#include "platform/dirwatch.h"
#include "platform/proc.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define HEALTHY_MS 60000
#define FINAL_MS 5000            /* after KILL: how long to wait for reaping */
#define PROBE_MIN_MS 2
#define PROBE_MAX_MS 100

struct sup {
	struct reactor r;
	const struct home *h;
	struct settings s;
	struct sup_status st;
	struct pid_record self;
	struct logcap log;
	int out_rd, out_wr, out_h;
	int ready_fd;
	int initial;              /* the launching start still waits */
	int ready_timeout_s;

	pid_t srv;                /* 0: no server */
	struct pid_record srv_rec;
	int srv_h;
	int srv_ready;

	int probe_h, probe_ms;
	struct wsprobe *ws;       /* codex-initialize probe (static storage) */
	char probe_err[256];      /* the last failed probe, for notReady */
	int dw_fd, dw_h;
	int notify_rd, notify_h;
	int nsock, nsock_h;

	int deadline_h, backoff_h, kill_h, heartbeat_h, healthy_h, final_h, stopping_h;
	int lfd, repair_h;        /* socket activation: the held listener */
	int64_t backoff_ms;
	int stopping_server;      /* TERM sent to the current server */
	int shutting_down;
	int finished;
	int restart_now;          /* HUP or not-ready restart pending */
	int forced;
	int own_status;
	int exit_code;
	int grace_s;

	/* updater (DESIGN.md "Updater") */
	struct updater *upd;      /* static storage */
	struct pkgdir pk;
	int upd_h;                /* the next scheduled check */
	int upd_phase;            /* UPH_*: where an update of the server is */
	int upd_lock;             /* daemon.lock, held from switch to verdict */
	char upd_req[64];         /* the request being answered, "" if scheduled */
	char pend_req[64];        /* a request that came in while busy */
	int pend, pend_check;
	long req_locker, pend_locker;        /* the requester holds daemon.lock */
	uint64_t pend_fetch_ms;
	char upd_back[UPD_RELEASE_MAX];      /* current before the switch */
	char upd_back_prev[UPD_RELEASE_MAX]; /* previous before the switch */
	char upd_prev_version[MANIFEST_VERSION_MAX];
	int rb_pending;                      /* rolled back; verdict not yet published */
	char rb_msg[768];
	struct upd_result upd_res;           /* the install being verified */
	/* self-refresh: the new appd's --version probe */
	pid_t vfy_pid;
	int vfy_fd, vfy_io_h, vfy_timer_h;
	char vfy_out[64];
	size_t vfy_len;
	char vfy_path[HOME_PATH_MAX];
	unsigned char self_sha[32];
	int has_self_sha;
};

enum { UPH_NONE = 0, UPH_STOPPING_OLD, UPH_VERIFYING };

static void sup_spawn(struct sup *s);
static void sup_check_done(struct sup *s);
static void upd_verified(struct sup *s);
static void upd_rollback(struct sup *s, const char *why);
static void upd_abandon(struct sup *s);
static void upd_rollback_done(struct sup *s, const char *extra);
static void refresh_verdict(struct sup *s, int ok);

static void
logf_(const char *fmt, ...)
{
	char t[32], buf[1024];
	int n;
	va_list ap;

	iso8601_ms(wall_ms(), t);
	n = snprintf(buf, sizeof buf, "%s appd[%ld]: ", t, (long)getpid());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	buf[n++] = '\n';
	(void)fd_write_all(2, buf, (size_t)n);
}

static void
cancel(struct sup *s, int *h)
{
	if (*h >= 0)
		reactor_del(&s->r, *h);
	*h = -1;
}

/* Another live supervisor's record in status.json?  Then it owns the
 * file and we never write it again (Heddle's heartbeat stole records
 * back; seed-contract.md §7.5). */
static int
record_taken(struct sup *s)
{
	static struct sup_status cur;
	struct err e;

	err_clear(&e);
	return status_read(s->h->status, &cur, &e) == 0 && cur.server_id[0] != '\0' &&
	    strcmp(cur.server_id, s->st.server_id) != 0 &&
	    proc_matches((pid_t)cur.sup_pid, cur.sup_start_ticks, cur.boot_id) == 1;
}

static void
publish(struct sup *s)
{
	struct err e;

	if (!s->own_status)
		return;
	if (s->st.incarnation > 0 && record_taken(s)) {
		logf_("status record now owned by another live supervisor; no longer writing it");
		s->own_status = 0;
		return;
	}
	err_clear(&e);
	s->st.last_seen_at = wall_ms();
	if (status_write(s->h->status, &s->st, &e) < 0)
		logf_("%s", e.msg);
}

static void
set_state(struct sup *s, const char *state, const char *msg)
{
	str_fmt(s->st.state, sizeof s->st.state, "%s", state);
	if (msg)
		str_fmt(s->st.message, sizeof s->st.message, "%s", msg);
	publish(s);
}

static void
report(struct sup *s, const char *line)
{
	if (s->ready_fd < 0)
		return;
	(void)fd_write_all(s->ready_fd, line, strlen(line));
	close(s->ready_fd);
	s->ready_fd = -1;
}

static void
report_fail(struct sup *s, enum err_code code, int exit_code, int sig, const char *msg)
{
	char line[1024];

	str_fmt(line, sizeof line, "fail %s %d %d %s\n", err_code_name(code),
	    exit_code, sig, msg);
	for (char *p = line + 5; *p && p[1]; p++)
		if (*p == '\n')
			*p = ' ';
	report(s, line);
	s->initial = 0;
}

int
sup_report_parse(const char *line, struct sup_report *out)
{
	char code[64];
	int n = 0;

	memset(out, 0, sizeof *out);
	out->exit_code = -1;
	if (sscanf(line, "ready %ld", &out->server_pid) == 1) {
		out->ready = 1;
		return 0;
	}
	if (sscanf(line, "fail %63s %d %d %n", code, &out->exit_code, &out->exit_signal, &n) < 3 || n == 0)
		return -1;
	out->code = ERR_OTHER;
	for (int c = ERR_OTHER; c <= ERR_STOP_TIMEOUT; c++)
		if (strcmp(err_code_name((enum err_code)c), code) == 0)
			out->code = (enum err_code)c;
	str_fmt(out->message, sizeof out->message, "%s", line + n);
	n = (int)strlen(out->message);
	while (n > 0 && out->message[n - 1] == '\n')
		out->message[--n] = '\0';
	return 0;
}

static void
stop_probe(struct sup *s)
{
	cancel(s, &s->probe_h);
	wsprobe_cancel(s->ws);
}

/* ---- shutdown of the server tree ---- */

static int
kill_children(int sig)
{
	pid_t kids[256];
	int n = proc_children(getpid(), kids, 256), live = 0;

	for (int i = 0; i < n; i++) {
		struct proc_info pi;
		if (proc_read(kids[i], &pi) != PROC_ALIVE)
			continue;
		live++;
		if (sig)
			kill(kids[i], sig);
		if (sig == SIGTERM)
			kill(kids[i], SIGCONT);
	}
	return live;
}

static void
on_final(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->final_h = -1;
	logf_("descendants still present %d s after SIGKILL; exiting anyway", FINAL_MS / 1000);
	s->srv = 0;
	kill_children(0);
	sup_check_done(s);
	if (s->shutting_down)
		reactor_stop(&s->r);
}

static void
on_kill(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->kill_h = -1;
	s->forced = 1;
	logf_("grace period over: SIGKILL to the server's process group and descendants");
	if (s->srv_rec.pgid > 1)
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGKILL);
	kill_children(SIGKILL);
	cancel(s, &s->final_h);
	s->final_h = reactor_timer_add(&s->r, FINAL_MS, on_final, s);
}

/* TERM+CONT to the server's group (and, when shutting down, to every
 * adopted descendant), then KILL after the grace period. */
static void
stop_server(struct sup *s, int grace_s)
{
	stop_probe(s);
	cancel(s, &s->deadline_h);
	cancel(s, &s->healthy_h);
	cancel(s, &s->backoff_h);
	if (s->stopping_server)
		return;
	s->stopping_server = 1;
	if (s->srv > 0 && s->srv_rec.pgid > 1) {
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGTERM);
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGCONT);
	}
	if (s->shutting_down)
		kill_children(SIGTERM);
	cancel(s, &s->kill_h);
	if (grace_s == 0)
		on_kill(&s->r, -1, 0, s);
	else
		s->kill_h = reactor_timer_add(&s->r, (uint64_t)grace_s * 1000, on_kill, s);
}

static void
finish(struct sup *s)
{
	struct err e;
	char sp[HOME_PATH_MAX + 32];

	if (s->finished)
		return;
	s->finished = 1;
	cancel(s, &s->kill_h);
	cancel(s, &s->final_h);
	cancel(s, &s->stopping_h);
	cancel(s, &s->heartbeat_h);
	cancel(s, &s->backoff_h);
	stop_probe(s);
	cancel(s, &s->deadline_h);
	cancel(s, &s->healthy_h);
	cancel(s, &s->repair_h);
	cancel(s, &s->upd_h);
	updater_cancel(s->upd);
	upd_abandon(s);
	if (s->vfy_pid > 0)
		refresh_verdict(s, 0);
	s->st.next_check_at = 0;
	s->st.checking = 0;
	if (s->lfd >= 0) {
		close(s->lfd);
		s->lfd = -1;
		unlink(s->h->anchor);
	}
	sock_cleanup(s->h->socket);
	unlink(s->h->notify_sock);
	s->st.server_pid = 0;
	s->st.server_pgid = 0;
	s->st.ready = 0;
	s->st.next_restart_at = 0;
	set_state(s, "stopped", s->exit_code ? s->st.message : "stopped");
	err_clear(&e);
	(void)pidfile_clear_own(s->h->sup_pid, &s->self, &e);
	str_fmt(sp, sizeof sp, "%s/%s", s->h->state, SUP_STOP_REQUEST);
	unlink(sp);
	logf_("supervisor exiting with status %d", s->exit_code);
	reactor_stop(&s->r);
}

static void
sup_check_done(struct sup *s)
{
	if (!s->shutting_down || s->srv > 0)
		return;
	if (kill_children(s->forced ? SIGKILL : 0) > 0)
		return;
	finish(s);
}

/* A stop that completes at once never shows "stopping": the state is
 * published only when the server takes longer than this. */
#define STOPPING_PUBLISH_MS 50

static void
on_stopping(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->stopping_h = -1;
	publish(s);
}

static void
begin_shutdown(struct sup *s, int exit_code, const char *why)
{
	if (s->shutting_down)
		return;
	s->shutting_down = 1;
	s->exit_code = exit_code;
	logf_("shutting down: %s", why);
	cancel(s, &s->upd_h);
	updater_cancel(s->upd);
	upd_abandon(s);
	str_fmt(s->st.message, sizeof s->st.message, "%s", why);
	if (s->srv > 0) {
		str_fmt(s->st.state, sizeof s->st.state, "stopping");
		s->stopping_h = reactor_timer_add(&s->r, STOPPING_PUBLISH_MS, on_stopping, s);
		stop_server(s, s->grace_s);
	} else {
		kill_children(SIGTERM);
		cancel(s, &s->kill_h);
		s->kill_h = reactor_timer_add(&s->r, (uint64_t)s->grace_s * 1000 + 1, on_kill, s);
		sup_check_done(s);
	}
}

/* ---- readiness ---- */

static void
on_healthy(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->healthy_h = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->st.backoff_ms = 0;
	publish(s);
}

static void
became_ready(struct sup *s)
{
	char line[64];

	if (s->srv_ready || s->srv <= 0 || s->stopping_server)
		return;
	s->srv_ready = 1;
	stop_probe(s);
	cancel(s, &s->deadline_h);
	s->st.ready = 1;
	s->st.ready_at = wall_ms();
	s->st.next_restart_at = 0;
	logf_("server pid %ld is ready (%s)", (long)s->srv, readiness_name(s->s.readiness));
	set_state(s, "running", "ready");
	if (s->upd_phase == UPH_VERIFYING)
		upd_verified(s);
	else if (s->rb_pending)
		upd_rollback_done(s, NULL);
	if (s->initial) {
		str_fmt(line, sizeof line, "ready %ld\n", (long)s->srv);
		report(s, line);
		s->initial = 0;
	}
	/* the run/ watch only speeds up readiness; closing an inotify fd
	 * waits for an RCU grace period, so pay that now, after reporting,
	 * rather than on the stop path */
	cancel(s, &s->dw_h);
	if (s->dw_fd >= 0)
		close(s->dw_fd);
	s->dw_fd = -1;
	cancel(s, &s->healthy_h);
	s->healthy_h = reactor_timer_add(&s->r, HEALTHY_MS, on_healthy, s);
}

static void probe_later(struct sup *s);
static void on_ws_done(struct wsprobe *p, void *arg);

static void
on_probe(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	int p;

	(void)r; (void)h; (void)ev;
	s->probe_h = -1;
	if (s->srv <= 0 || s->srv_ready || s->stopping_server)
		return;
	if (s->s.readiness == READY_CODEX_INIT) {
		if (wsprobe_running(s->ws))
			return;
		if (wsprobe_start(s->ws, &s->r, s->h->socket, APPD_VERSION,
		    WSPROBE_DEFAULT_TIMEOUT_MS, on_ws_done, s) == 0)
			return;
		str_fmt(s->probe_err, sizeof s->probe_err, "%s", s->ws->err.msg);
	} else {
		p = sock_probe(s->h->socket);
		if (p == 1) {
			became_ready(s);
			return;
		}
	}
	probe_later(s);
}

static void
probe_later(struct sup *s)
{
	s->probe_ms = s->probe_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : s->probe_ms * 2;
	s->probe_h = reactor_timer_add(&s->r, (uint64_t)s->probe_ms, on_probe, s);
}

/* One codex-initialize session ended: ready with a version, or retry. */
static void
on_ws_done(struct wsprobe *p, void *arg)
{
	struct sup *s = arg;

	if (s->srv <= 0 || s->srv_ready || s->stopping_server)
		return;
	if (p->ok) {
		str_fmt(s->st.app_server_version, sizeof s->st.app_server_version, "%s", p->version);
		became_ready(s);
		return;
	}
	str_fmt(s->probe_err, sizeof s->probe_err, "%s", p->err.msg);
	if (s->probe_h < 0)
		probe_later(s);
}

static void
on_dirwatch(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	dirwatch_drain(s->dw_fd);
	/* something appeared in run/: probe now rather than at the next tick */
	if (s->probe_h >= 0 && !s->srv_ready && !wsprobe_running(s->ws)) {
		cancel(s, &s->probe_h);
		s->probe_ms = PROBE_MIN_MS / 2 ? PROBE_MIN_MS / 2 : 1;
		on_probe(&s->r, -1, 0, s);
	}
}

static void
on_notify_fd(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	char buf[256];
	ssize_t n;

	(void)r; (void)h; (void)ev;
	n = fd_read(s->notify_rd, buf, sizeof buf);
	if (n > 0 && memchr(buf, '\n', (size_t)n) != NULL) {
		became_ready(s);
	} else if (n > 0) {
		return;
	}
	/* ready, EOF or error: this channel is done */
	cancel(s, &s->notify_h);
	close(s->notify_rd);
	s->notify_rd = -1;
}

static void
on_notify_sock(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	char buf[4096];
	ssize_t n;

	(void)r; (void)h; (void)ev;
	while ((n = recv(s->nsock, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
		char *line, *save = NULL;
		buf[n] = '\0';
		for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (strcmp(line, "READY=1") == 0)
				became_ready(s);
	}
}

static void
on_deadline(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	char msg[256];

	(void)r; (void)h; (void)ev;
	s->deadline_h = -1;
	if (s->srv_ready || s->srv <= 0)
		return;
	str_fmt(msg, sizeof msg, "app-server did not become ready on %s within %d s (readiness %s%s%s)",
	    s->h->socket, s->ready_timeout_s, readiness_name(s->s.readiness),
	    s->probe_err[0] ? ": " : "", s->probe_err);
	logf_("%s", msg);
	if (s->initial) {
		report_fail(s, ERR_NOT_READY, -1, 0, msg);
		begin_shutdown(s, 1, msg);
		return;
	}
	str_fmt(s->st.message, sizeof s->st.message, "%s", msg);
	if (s->upd_phase == UPH_VERIFYING) {
		upd_rollback(s, msg);
		return;
	}
	upd_rollback_done(s, "the previous release did not become ready either");
	s->restart_now = 0;
	stop_server(s, s->grace_s);
}

/* ---- the server's lifecycle ---- */

static void
on_backoff(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->backoff_h = -1;
	s->st.next_restart_at = 0;
	s->st.restarts++;
	sup_spawn(s);
}

static void
schedule_restart(struct sup *s)
{
	char msg[128];

	str_fmt(msg, sizeof msg, "restarting in %lld ms", (long long)s->backoff_ms);
	logf_("%s", msg);
	s->st.backoff_ms = s->backoff_ms;
	s->st.next_restart_at = wall_ms() + s->backoff_ms;
	cancel(s, &s->backoff_h);
	s->backoff_h = reactor_timer_add(&s->r, (uint64_t)s->backoff_ms, on_backoff, s);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	set_state(s, "backoff", msg);
}

static void
on_server_exit(struct reactor *r, int h, int status, void *arg)
{
	struct sup *s = arg;
	struct err e;
	char msg[256];
	int clean;

	(void)r; (void)h;
	s->srv_h = -1;
	stop_probe(s);
	cancel(s, &s->deadline_h);
	cancel(s, &s->healthy_h);
	s->st.has_last_exit = 1;
	s->st.last_exit_at = wall_ms();
	if (WIFSIGNALED(status)) {
		s->st.last_exit_signal = WTERMSIG(status);
		s->st.last_exit_code = -1;
		str_fmt(msg, sizeof msg, "server pid %ld was killed by signal %d",
		    (long)s->srv, WTERMSIG(status));
	} else {
		s->st.last_exit_signal = 0;
		s->st.last_exit_code = WEXITSTATUS(status);
		str_fmt(msg, sizeof msg, "server pid %ld exited with status %d",
		    (long)s->srv, WEXITSTATUS(status));
	}
	logf_("%s", msg);
	clean = !WIFSIGNALED(status) && WEXITSTATUS(status) == 0;
	err_clear(&e);
	(void)pidfile_clear_own(s->h->srv_pid, &s->srv_rec, &e);
	/* what is left of the group goes with its leader */
	if (s->srv_rec.pgid > 1 && !s->shutting_down)
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGKILL);
	s->srv = 0;
	s->srv_ready = 0;
	s->stopping_server = 0;
	cancel(s, &s->kill_h);
	s->st.server_pid = 0;
	s->st.server_pgid = 0;
	s->st.ready = 0;
	str_fmt(s->st.message, sizeof s->st.message, "%s", msg);
	if (s->shutting_down) {
		/* adopted descendants get the rest of the grace period; with
		 * none left, finish() publishes the final state */
		if (kill_children(0) > 0) {
			publish(s);
			if (!s->forced)
				s->kill_h = reactor_timer_add(&s->r, (uint64_t)s->grace_s * 1000,
				    on_kill, s);
			return;
		}
		sup_check_done(s);
		return;
	}
	if (s->initial) {
		report_fail(s, ERR_EXITED, s->st.last_exit_code, s->st.last_exit_signal, msg);
		begin_shutdown(s, 1, msg);
		return;
	}
	if (s->upd_phase == UPH_VERIFYING && !s->restart_now) {
		upd_rollback(s, msg);
		return;
	}
	if (s->restart_now) {
		s->restart_now = 0;
		sup_spawn(s);
		return;
	}
	upd_rollback_done(s, "the previous release exited before it was ready");
	if (s->s.restart == RESTART_NEVER || (clean && s->s.restart == RESTART_ON_FAILURE)) {
		begin_shutdown(s, 0, msg);
		return;
	}
	schedule_restart(s);
}

static void
on_output(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	char buf[4096];
	ssize_t n;

	(void)r; (void)h; (void)ev;
	for (int k = 0; k < 16; k++) {
		n = read(s->out_rd, buf, sizeof buf);
		if (n <= 0)
			break;
		(void)logcap_write(&s->log, buf, (size_t)n);
	}
}

static void
sup_spawn(struct sup *s)
{
	static char argbuf[16384];
	char *argv[SETTINGS_MAX_ARGS + 9], *env[9];
	struct spawn_opts o;
	struct pidfile_resv rv;
	struct pid_record other;
	struct err e;
	sigset_t mask;
	int np[2] = { -1, -1 };
	char banner[512];
	pid_t pid;
	int rs;

	err_clear(&e);
	if (s->upd_phase == UPH_STOPPING_OLD)
		s->upd_phase = UPH_VERIFYING;
	if (settings_launch(&s->s, s->h, argbuf, sizeof argbuf, argv, env, &e) < 0)
		goto fail;
	/* what a crashed incarnation left at the path goes first (the first
	 * incarnation's path was prepared at startup) */
	if (s->st.incarnation > 0 && s->lfd < 0 &&
	    sock_prepare(s->h->socket, s->h->startup_lock, &e) < 0)
		goto fail;
	rs = pidfile_reserve(s->h->srv_pid, 2000, &rv, &other, &e);
	if (rs == 1) {
		err_set(&e, ERR_OTHER, "another app-server is recorded as running (pid %ld) in %s",
		    other.pid, s->h->srv_pid);
		goto fail;
	}
	if (rs < 0)
		goto fail;
	if (s->s.readiness == READY_NOTIFY && compat_pipe(np, 0) < 0) {
		pidfile_abandon(&rv);
		err_sys(&e, ERR_SPAWN, "cannot create the readiness pipe");
		goto fail;
	}
	str_fmt(banner, sizeof banner, "--- appd: starting %s (incarnation %d) ---\n",
	    argv[0], s->st.incarnation + 1);
	(void)logcap_write(&s->log, banner, strlen(banner));
	reactor_child_sigmask(&s->r, &mask);
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.cwd = s->h->root;
	o.out_fd = s->out_wr;
	o.listen_fd = s->lfd;
	o.notify_fd = np[1];
	o.notify_socket = s->nsock >= 0 ? s->h->notify_sock : NULL;
	o.sigmask = &mask;
	o.env_add = (const char *const *)env;
	s->probe_err[0] = '\0';
	s->st.app_server_version[0] = '\0';
	pid = spawn_server(&o, &e);
	if (np[1] >= 0)
		close(np[1]);
	if (pid < 0) {
		if (np[0] >= 0)
			close(np[0]);
		pidfile_abandon(&rv);
		goto fail;
	}
	s->srv = pid;
	s->srv_ready = 0;
	s->stopping_server = 0;
	s->srv_h = reactor_child_add(&s->r, pid, on_server_exit, s);
	if (pidrec_capture(pid, &s->srv_rec) < 0) {
		/* it already exited: the child watch reports it */
		memset(&s->srv_rec, 0, sizeof s->srv_rec);
		s->srv_rec.pid = pid;
		s->srv_rec.pgid = pid;
		pidfile_abandon(&rv);
	} else {
		s->srv_rec.pgid = pid;
		if (pidfile_publish(&rv, &s->srv_rec, &e) < 0)
			logf_("%s", e.msg);
	}
	s->st.incarnation++;
	s->st.server_pid = pid;
	s->st.server_pgid = pid;
	s->st.ready = 0;
	logf_("started server pid %ld: %s", (long)pid, argv[0]);
	set_state(s, "starting", "starting");
	cancel(s, &s->deadline_h);
	s->deadline_h = reactor_timer_add(&s->r, (uint64_t)s->ready_timeout_s * 1000, on_deadline, s);
	switch (s->s.readiness == READY_CONNECT && s->lfd >= 0 ? READY_NONE : s->s.readiness) {
	case READY_NONE:
		/* with socket activation the listener accepts from the start:
		 * connections queue until the server takes them */
		became_ready(s);
		break;
	case READY_NOTIFY:
		s->notify_rd = np[0];
		s->notify_h = reactor_io_add(&s->r, np[0], REACTOR_READ, on_notify_fd, s);
		break;
	case READY_CONNECT:
	case READY_CODEX_INIT:
		if (s->dw_fd < 0 && (s->dw_fd = dirwatch_open(s->h->run)) >= 0)
			s->dw_h = reactor_io_add(&s->r, s->dw_fd, REACTOR_READ, on_dirwatch, s);
		s->probe_ms = PROBE_MIN_MS;
		s->probe_h = reactor_timer_add(&s->r, PROBE_MIN_MS, on_probe, s);
		break;
	}
	return;
fail:
	logf_("cannot start the server: %s", e.msg);
	str_fmt(s->st.message, sizeof s->st.message, "%s", e.msg);
	if (s->initial) {
		report_fail(s, e.code == ERR_NONE ? ERR_SPAWN : e.code, -1, 0, e.msg);
		begin_shutdown(s, 1, e.msg);
		return;
	}
	if (s->upd_phase == UPH_VERIFYING) {
		upd_rollback(s, e.msg);
		return;
	}
	schedule_restart(s);
}

/* ---- socket activation: keep the public path pointing at our listener ---- */

#define REPAIR_CHECK_MS 10000

static void
on_repair(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	int k;

	(void)r; (void)h; (void)ev;
	s->repair_h = reactor_timer_add(&s->r, REPAIR_CHECK_MS, on_repair, s);
	k = sock_repair(s->h->socket, s->h->anchor);
	if (k == 1) {
		s->st.socket_repairs++;
		s->st.last_repair_at = wall_ms();
		logf_("control socket path %s was missing or replaced; re-created it", s->h->socket);
		str_fmt(s->st.message, sizeof s->st.message, "re-created the control socket path");
		publish(s);
	} else if (k < 0) {
		logf_("cannot repair the control socket path %s: %s", s->h->socket, strerror(errno));
	}
}

/* ---- the updater: schedule, check, switch, verify, roll back ---- */

#define UPD_FIRST_MIN_MS   60000LL          /* first check 1..5 min after start */
#define UPD_FIRST_MAX_MS   300000LL
#define UPD_FAIL_BASE_MS   60000LL          /* failures: full jitter up to base*2^n */
#define UPD_FAIL_MIN_MS    15000LL
#define UPD_FAIL_CAP_MS    (6LL * 3600 * 1000)
#define UPD_BUSY_MS        30000LL          /* daemon.lock held: retry */

/* Uniform in [lo, hi] (getentropy; the midpoint if that fails). */
static int64_t
rand_ms(int64_t lo, int64_t hi)
{
	uint64_t v;
	struct err e;

	if (hi <= lo)
		return lo;
	err_clear(&e);
	if (entropy_get(&v, sizeof v, &e) < 0)
		return lo + (hi - lo) / 2;
	return lo + (int64_t)(v % (uint64_t)(hi - lo + 1));
}

static void on_upd_timer(struct reactor *r, int h, int ev, void *arg);

static void
upd_schedule(struct sup *s, int64_t delay_ms)
{
	cancel(s, &s->upd_h);
	s->st.next_check_at = 0;
	if (!s->s.upd.enabled || s->s.upd.manifest_url[0] == '\0' || s->shutting_down)
		return;
	s->upd_h = reactor_timer_add(&s->r, (uint64_t)delay_ms, on_upd_timer, s);
	if (s->upd_h >= 0)
		s->st.next_check_at = wall_ms() + delay_ms;
}

/* The next check after one that went `ok` (interval + up to 20 %), or
 * failed (exponential backoff with full jitter, capped at 6 h); a
 * Retry-After from the server pushes it further. */
static void
upd_schedule_after(struct sup *s, int ok, long long retry_after_s)
{
	int64_t d;

	if (ok) {
		int64_t iv = (int64_t)s->s.upd.interval_min * 60000;
		d = iv + rand_ms(0, iv / 5);
	} else {
		int n = s->upd->st.failures > 20 ? 20 : s->upd->st.failures;
		int64_t cap = UPD_FAIL_BASE_MS << (n > 0 ? n - 1 : 0);
		if (cap > UPD_FAIL_CAP_MS)
			cap = UPD_FAIL_CAP_MS;
		d = rand_ms(UPD_FAIL_MIN_MS, cap);
	}
	if (retry_after_s > 0 && retry_after_s * 1000 > d)
		d = retry_after_s * 1000 > 24LL * 3600 * 1000 ? 24LL * 3600 * 1000 : retry_after_s * 1000;
	upd_schedule(s, d);
}

/* Record a verdict in packages/updater.json (the `update` CLI and
 * `status` read it there), after publishing status.json. */
static void
upd_save(struct sup *s, const char *result, const char *reason, const char *version,
    const char *msg)
{
	struct upd_state *st = &s->upd->st;
	struct err e;

	updstate_set_result(st, result, reason, version, msg);
	str_copy(st->request_id, sizeof st->request_id, s->upd_req);
	st->next_check_at = s->st.next_check_at;
	/* status.json first: whoever sees the answer in updater.json then
	 * finds the new schedule in `status` */
	s->st.checking = 0;
	publish(s);
	err_clear(&e);
	if (updstate_write(s->pk.state, st, &e) < 0)
		logf_("%s", e.msg);
	logf_("update check: %s%s%s%s: %s", result, reason && reason[0] ? " (" : "",
	    reason ? reason : "", reason && reason[0] ? ")" : "", msg ? msg : "");
	s->upd_req[0] = '\0';
}

static void upd_start(struct sup *s, const char *req, int check_only, uint64_t fetch_ms,
		      long locker);

static void
upd_next_request(struct sup *s)
{
	if (s->pend && !s->shutting_down) {
		s->pend = 0;
		upd_start(s, s->pend_req, s->pend_check, s->pend_fetch_ms, s->pend_locker);
	}
}

static void
upd_release_lock(struct sup *s)
{
	if (s->upd_lock >= 0)
		close(s->upd_lock);
	s->upd_lock = -1;
	s->st.checking = 0;
}

static void
upd_prune(struct sup *s, const char *keep_appd)
{
	char self[PATH_MAX];
	struct err e;

	err_clear(&e);
	if (!keep_appd || !keep_appd[0])
		keep_appd = proc_self_exe(self, sizeof self) == 0 ? self : NULL;
	if (install_prune(&s->pk, keep_appd, &e) < 0)
		logf_("pruning old releases: %s", e.msg);
}

static void self_refresh(struct sup *s, const char *path);

/* The request came from a command that holds daemon.lock itself (a
 * rerun of `bootstrap`): the lock is held and its note names that pid. */
static int
requester_holds_lock(struct sup *s)
{
	struct lock_holder lh;

	return s->req_locker > 0 && lock_is_held(s->h->daemon_lock) == 1 &&
	    lock_read_holder(s->h->daemon_lock, &lh) == 0 && lh.pid == s->req_locker;
}

/* A new release is installed: switch `current` and restart the server
 * onto it; the verdict comes from readiness (upd_verified/upd_rollback). */
static void
upd_apply(struct sup *s, const struct upd_result *res)
{
	struct err e;
	char msg[512];

	s->upd_res = *res;
	err_clear(&e);
	if (res->release[0] == '\0') {
		/* only appd itself is new */
		updater_accept(s->upd);
		s->upd->st.failures = 0;
		upd_schedule_after(s, 1, -1);
		upd_save(s, "updated", NULL, res->version, "installed a new appd; re-executing it");
		s->st.checking = 0;
		upd_prune(s, res->appd_path);
		self_refresh(s, res->appd_path);
		return;
	}
	if (requester_holds_lock(s)) {
		s->upd_lock = -1;       /* `bootstrap` holds it for us */
	} else if ((s->upd_lock = lock_acquire(s->h->daemon_lock, 0)) < 0) {
		s->upd->st.failures++;
		upd_schedule(s, UPD_BUSY_MS);
		upd_save(s, "rejected", "busy", res->version,
		    "another lifecycle command holds daemon.lock; the update is retried later");
		s->st.checking = 0;
		publish(s);
		upd_next_request(s);
		return;
	}
	if (s->upd_lock >= 0)
		(void)lock_note_holder(s->upd_lock, "update");
	if (install_link_read(s->pk.current, s->upd_back, sizeof s->upd_back, &e) != 0)
		s->upd_back[0] = '\0';
	err_clear(&e);
	if (install_link_read(s->pk.previous, s->upd_back_prev, sizeof s->upd_back_prev, &e) != 0)
		s->upd_back_prev[0] = '\0';
	str_copy(s->upd_prev_version, sizeof s->upd_prev_version, res->installed);
	err_clear(&e);
	if (install_switch(&s->pk, res->release, &e) < 0) {
		upd_release_lock(s);
		s->upd->st.failures++;
		upd_schedule_after(s, 0, -1);
		upd_save(s, "rejected", "io", res->version, e.msg);
		publish(s);
		upd_next_request(s);
		return;
	}
	str_fmt(msg, sizeof msg, "updating to %s", res->version);
	logf_("%s: switched %s to %s; restarting the server", msg, s->pk.current, res->release);
	s->upd_phase = UPH_STOPPING_OLD;
	s->backoff_ms = BACKOFF_MIN_MS;
	if (s->srv > 0) {
		s->restart_now = 1;
		set_state(s, "restarting", msg);
		stop_server(s, s->grace_s);
	} else {
		cancel(s, &s->backoff_h);
		sup_spawn(s);
	}
}

static void
upd_verified(struct sup *s)
{
	struct upd_state *st = &s->upd->st;
	char msg[256];

	s->upd_phase = UPH_NONE;
	updater_accept(s->upd);
	st->failures = 0;
	str_copy(st->previous_version, sizeof st->previous_version, s->upd_prev_version);
	st->last_pid = (long)s->srv;
	upd_schedule_after(s, 1, -1);
	str_fmt(msg, sizeof msg, "updated to %s; server pid %ld is ready", s->upd_res.version,
	    (long)s->srv);
	upd_save(s, "updated", NULL, s->upd_res.version, msg);
	upd_prune(s, s->upd_res.appd_path);
	upd_release_lock(s);
	publish(s);
	if (s->upd_res.appd_path[0]) {
		self_refresh(s, s->upd_res.appd_path);
		return;
	}
	upd_next_request(s);
}

/* The new release did not become ready: back to the one before, which
 * is started again; the version is never tried again.  The verdict is
 * published once the previous release is ready again (upd_rollback_done),
 * so whoever asked finds the server back when the answer comes. */
static void
upd_rollback(struct sup *s, const char *why)
{
	struct upd_state *st = &s->upd->st;
	struct err e;

	s->upd_phase = UPH_NONE;
	err_clear(&e);
	if (s->upd_back[0] && install_switch_back(&s->pk, s->upd_back, s->upd_back_prev, &e) < 0)
		logf_("rolling back: %s", e.msg);
	updater_accept(s->upd);
	updstate_add_rejected(st, s->upd_res.version);
	st->previous_version[0] = '\0';
	st->last_pid = 0;
	str_fmt(s->rb_msg, sizeof s->rb_msg, "version %s was not ready (%s); rolled back to %s",
	    s->upd_res.version, why, s->upd_back[0] ? s->upd_back : "nothing");
	logf_("%s", s->rb_msg);
	s->rb_pending = 1;
	upd_prune(s, NULL);
	upd_release_lock(s);
	s->st.checking = 1;
	s->backoff_ms = BACKOFF_MIN_MS;
	if (s->srv > 0) {
		s->restart_now = 1;
		set_state(s, "restarting", s->rb_msg);
		stop_server(s, s->grace_s);
	} else {
		cancel(s, &s->backoff_h);
		sup_spawn(s);
	}
}

/* The release rolled back to is ready (or failed too, `extra` says
 * how): publish the rejection. */
static void
upd_rollback_done(struct sup *s, const char *extra)
{
	char msg[1024];

	if (!s->rb_pending)
		return;
	s->rb_pending = 0;
	str_fmt(msg, sizeof msg, "%s%s%s", s->rb_msg, extra ? "; " : "", extra ? extra : "");
	upd_schedule_after(s, 1, -1);
	upd_save(s, "rejected", "notReady", s->upd_res.version, msg);
	s->st.checking = 0;
	publish(s);
	upd_next_request(s);
}

/* Shutting down in the middle of an update: the new release was never
 * seen ready, so `current` goes back (the next check installs it again). */
static void
upd_abandon(struct sup *s)
{
	struct err e;

	upd_rollback_done(s, "the supervisor is stopping");
	if (s->upd_phase == UPH_NONE) {
		if (s->upd_req[0] && s->upd) {
			upd_save(s, "rejected", "stopped", "", "the supervisor stopped during the check");
		}
		upd_release_lock(s);
		return;
	}
	s->upd_phase = UPH_NONE;
	err_clear(&e);
	if (s->upd_back[0] && install_switch_back(&s->pk, s->upd_back, s->upd_back_prev, &e) < 0)
		logf_("abandoning the update: %s", e.msg);
	upd_save(s, "rejected", "stopped", s->upd_res.version,
	    "the supervisor stopped before the new release was ready; kept the previous one");
	upd_release_lock(s);
}

static void
on_upd_done(struct updater *u, const struct upd_result *res, void *arg)
{
	struct sup *s = arg;

	switch (res->kind) {
	case UPD_NO_UPDATE:
		updater_accept(u);
		u->st.failures = 0;
		upd_schedule_after(s, 1, res->retry_after);
		upd_save(s, "noUpdate", NULL, res->version, res->err.msg);
		break;
	case UPD_AVAILABLE:
		u->st.failures = 0;
		upd_schedule_after(s, 1, res->retry_after);
		upd_save(s, "updateAvailable", NULL, res->version, res->err.msg);
		break;
	case UPD_REJECTED:
		u->st.failures++;
		upd_schedule_after(s, 0, res->retry_after);
		upd_save(s, "rejected", res->reason, res->version, res->err.msg);
		break;
	case UPD_INSTALLED:
		upd_apply(s, res);
		return;
	}
	s->st.checking = 0;
	publish(s);
	upd_next_request(s);
}

static void
upd_start(struct sup *s, const char *req, int check_only, uint64_t fetch_ms, long locker)
{
	static struct settings ns;
	struct upd_opts o;
	struct err e;
	char mid[HOME_PATH_MAX + 16];

	if (s->shutting_down)
		return;
	if (updater_running(s->upd) || s->upd_phase != UPH_NONE || s->rb_pending) {
		str_copy(s->pend_req, sizeof s->pend_req, req);
		s->pend = 1;
		s->pend_check = check_only;
		s->pend_fetch_ms = fetch_ms;
		s->pend_locker = locker;
		return;
	}
	s->req_locker = locker;
	cancel(s, &s->upd_h);
	err_clear(&e);
	if (settings_load(s->h->settings, &ns, &e) == 0)
		s->s.upd = ns.upd;
	else
		logf_("update check: using the settings read at start: %s", e.msg);
	str_copy(s->upd_req, sizeof s->upd_req, req);
	memset(&o, 0, sizeof o);
	str_fmt(mid, sizeof mid, "%s/machine-id", s->h->state);
	o.cfg = &s->s.upd;
	o.pk = &s->pk;
	o.check_only = check_only;
	o.fetch_timeout_ms = fetch_ms;
	o.machine_id_fallback = mid;
	o.self_sha256 = s->has_self_sha ? s->self_sha : NULL;
	err_clear(&e);
	if (updater_start(s->upd, &s->r, &o, on_upd_done, s, &e) < 0) {
		struct err e2;
		err_clear(&e2);
		(void)updstate_read(s->pk.state, &s->upd->st, &e2);
		s->upd->st.failures++;
		upd_schedule_after(s, 0, -1);
		upd_save(s, "rejected", e.code == ERR_USAGE ? "notConfigured" : "io", "", e.msg);
		publish(s);
		return;
	}
	s->st.checking = 1;
	publish(s);
}

static void
on_upd_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->upd_h = -1;
	s->st.next_check_at = 0;
	upd_start(s, "", 0, 0, 0);
}

/* SIGUSR1: check now; state/update-request.json (from `appd update`)
 * says for whom and how. */
static void
upd_request(struct sup *s)
{
	char path[HOME_PATH_MAX + 32], buf[512], id[64] = "";
	jsmntok_t tok[16];
	struct jsonr r;
	long long v;
	size_t len;
	int check = 0;
	uint64_t fetch_ms = 0;
	long locker = 0;

	str_fmt(path, sizeof path, "%s/%s", s->h->state, SUP_UPDATE_REQUEST);
	if (fs_read_file(path, buf, sizeof buf, &len) == 0) {
		unlink(path);
		if (jsonr_parse(&r, buf, len, tok, 16) == 0) {
			(void)jsonr_str(&r, jsonr_get(&r, 0, "id"), id, sizeof id);
			(void)jsonr_bool(&r, jsonr_get(&r, 0, "checkOnly"), &check);
			if (jsonr_int(&r, jsonr_get(&r, 0, "fetchTimeoutMs"), &v) == 0 && v > 0)
				fetch_ms = (uint64_t)v;
			if (jsonr_int(&r, jsonr_get(&r, 0, "lockedBy"), &v) == 0 && v > 0)
				locker = (long)v;
		}
	}
	logf_("SIGUSR1: update check%s%s", id[0] ? " for request " : "", id);
	upd_start(s, id, check, fetch_ms, locker);
}

static int
keep_fd(int fd)
{
	return fd < 0 || fcntl(fd, F_SETFD, 0) == 0 ? 0 : -1;
}

/* Replace our image with the appd at s->vfy_path (the seed's updater
 * re-exec, seed-contract.md §5.2): execve keeps our pid, so the server
 * stays our child and supervisor.pid stays true; the listener and the
 * output pipe are handed over as fds named on the command line; every
 * other fd is CLOEXEC.  The signal mask survives execve, so a signal
 * that arrives meanwhile waits for the new image's signalfd.  On
 * failure we keep running as we are. */
static void
refresh_exec(struct sup *s)
{
	char fds[64];
	char *argv[] = { (char *)"appd", (char *)"supervise", (char *)"--handover", fds, NULL };
	extern char **environ;

	if (keep_fd(s->lfd) < 0 || keep_fd(s->out_rd) < 0 || keep_fd(s->out_wr) < 0) {
		logf_("self-refresh: cannot hand over the fds: %s", strerror(errno));
		goto undo;
	}
	str_fmt(fds, sizeof fds, "%d,%d,%d", s->lfd, s->out_rd, s->out_wr);
	s->st.checking = 0;
	publish(s);
	logf_("self-refresh: executing %s in place (pid %ld, server pid %ld)", s->vfy_path,
	    (long)getpid(), (long)s->srv);
	execve(s->vfy_path, argv, environ);
	logf_("self-refresh: cannot execute %s: %s", s->vfy_path, strerror(errno));
undo:
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	fd_cloexec(s->out_rd);
	fd_cloexec(s->out_wr);
}

/* The `--version` probe of the new appd ended (EOF on its output, or
 * the 2 s bound): exec it when it said "appd ". */
static void
refresh_verdict(struct sup *s, int ok)
{
	int st;

	cancel(s, &s->vfy_io_h);
	cancel(s, &s->vfy_timer_h);
	close(s->vfy_fd);
	s->vfy_fd = -1;
	/* ours to reap (the SIGCHLD handler leaves it alone) */
	if (waitpid(s->vfy_pid, &st, WNOHANG) == 0) {
		kill(s->vfy_pid, SIGKILL);
		(void)waitpid(s->vfy_pid, &st, 0);
	}
	s->vfy_pid = 0;
	if (ok && !s->shutting_down && s->upd_phase == UPH_NONE) {
		refresh_exec(s);
	} else if (!ok) {
		logf_("self-refresh: %s does not run as appd; keeping this one", s->vfy_path);
	}
	upd_next_request(s);
}

static void
on_vfy_read(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	ssize_t n;

	(void)r; (void)h; (void)ev;
	n = read(s->vfy_fd, s->vfy_out + s->vfy_len, sizeof s->vfy_out - 1 - s->vfy_len);
	if (n > 0 && (s->vfy_len += (size_t)n) < sizeof s->vfy_out - 1)
		return;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	s->vfy_out[s->vfy_len] = '\0';
	refresh_verdict(s, strncmp(s->vfy_out, "appd ", 5) == 0);
}

static void
on_vfy_timeout(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->vfy_timer_h = -1;
	refresh_verdict(s, 0);
}

/* Self-update: first check that `path` runs as appd (`path --version`
 * on a pipe watched by the reactor, bounded by 2 s), then refresh_exec. */
static void
self_refresh(struct sup *s, const char *path)
{
	sigset_t mask;
	int p[2];

	if (s->shutting_down || s->upd_phase != UPH_NONE || s->vfy_pid > 0)
		return;
	if (compat_pipe(p, COMPAT_NONBLOCK) < 0) {
		logf_("self-refresh: cannot create a pipe: %s", strerror(errno));
		return;
	}
	str_copy(s->vfy_path, sizeof s->vfy_path, path);
	s->vfy_len = 0;
	reactor_child_sigmask(&s->r, &mask);
	s->vfy_pid = fork();
	if (s->vfy_pid == 0) {
		char *const argv[] = { (char *)"appd", (char *)"--version", NULL };
		sigprocmask(SIG_SETMASK, &mask, NULL);
		dup2(p[1], 1);
		execv(path, argv);
		_exit(127);
	}
	close(p[1]);
	if (s->vfy_pid < 0) {
		logf_("self-refresh: cannot fork: %s", strerror(errno));
		s->vfy_pid = 0;
		close(p[0]);
		return;
	}
	s->vfy_fd = p[0];
	s->vfy_io_h = reactor_io_add(&s->r, p[0], REACTOR_READ, on_vfy_read, s);
	s->vfy_timer_h = reactor_timer_add(&s->r, 2000, on_vfy_timeout, s);
}

/* After self_refresh, in the new image: take back the server child (its
 * record is state/app-server.pid, its counters in status.json). */
static int
adopt(struct sup *s, const struct sup_opts *o, struct err *e)
{
	struct pid_record rec;
	enum pidfile_state ps;
	struct err e2;

	s->lfd = o->h_lfd;
	s->out_rd = o->h_out_rd;
	s->out_wr = o->h_out_wr;
	if (s->lfd >= 0)
		fd_cloexec(s->lfd);
	if (fd_cloexec(s->out_rd) < 0 || fd_cloexec(s->out_wr) < 0)
		return err_sys(e, ERR_IO, "handover: bad output pipe fds");
	err_clear(&e2);
	if (status_read(s->h->status, &s->st, &e2) != 0)
		memset(&s->st, 0, sizeof s->st);
	s->st.checking = 0;
	err_clear(&e2);
	if (pidfile_peek(s->h->srv_pid, &ps, &rec, &e2) == 0 && ps == PIDFILE_RUNNING &&
	    pidrec_active(&rec) == 1 && rec.pid != getpid()) {
		s->srv_h = reactor_child_add(&s->r, (pid_t)rec.pid, on_server_exit, s);
		if (s->srv_h >= 0) {
			s->srv = (pid_t)rec.pid;
			s->srv_rec = rec;
			s->srv_ready = s->st.ready;
			s->healthy_h = reactor_timer_add(&s->r, HEALTHY_MS, on_healthy, s);
			return 1;
		}
	}
	return 0;
}

/* ---- signals and heartbeat ---- */

static int
read_stop_grace(struct sup *s)
{
	char path[PATH_MAX], buf[256];
	jsmntok_t tok[8];
	struct jsonr r;
	long long g;
	size_t len;

	str_fmt(path, sizeof path, "%s/%s", s->h->state, SUP_STOP_REQUEST);
	if (fs_read_file(path, buf, sizeof buf, &len) < 0)
		return s->s.grace_s;
	unlink(path);
	if (jsonr_parse(&r, buf, len, tok, 8) < 0 ||
	    jsonr_int(&r, jsonr_get(&r, 0, "graceSeconds"), &g) < 0 || g < 0 || g > 3600)
		return s->s.grace_s;
	return (int)g;
}

static void
on_signal(struct reactor *r, int h, int sig, void *arg)
{
	struct sup *s = arg;
	struct settings ns;
	struct err e;

	(void)r; (void)h;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		s->grace_s = read_stop_grace(s);
		begin_shutdown(s, 0, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		if (s->shutting_down)
			break;
		err_clear(&e);
		if (settings_load(s->h->settings, &ns, &e) < 0) {
			logf_("SIGHUP: keeping the old settings: %s", e.msg);
		} else {
			settings_copy(&s->s, &ns);
			s->ready_timeout_s = ns.ready_timeout_s;
			s->grace_s = ns.grace_s;
			str_fmt(s->st.readiness, sizeof s->st.readiness, "%s", readiness_name(ns.readiness));
		}
		logf_("SIGHUP: restarting the server");
		s->backoff_ms = BACKOFF_MIN_MS;
		if (s->srv > 0) {
			s->restart_now = 1;
			set_state(s, "restarting", "restart requested");
			stop_server(s, s->grace_s);
		} else {
			cancel(s, &s->backoff_h);
			sup_spawn(s);
		}
		break;
	case SIGUSR1:
		if (!s->shutting_down)
			upd_request(s);
		break;
	case SIGCHLD: {
		pid_t kids[256];
		int n = proc_children(getpid(), kids, 256);
		for (int i = 0; i < n; i++) {
			int status;
			if (kids[i] == s->srv || kids[i] == s->vfy_pid)
				continue;       /* reaped by their owners */
			if (waitpid(kids[i], &status, WNOHANG) > 0)
				logf_("reaped descendant %ld", (long)kids[i]);
			else if (s->forced)
				kill(kids[i], SIGKILL);
		}
		sup_check_done(s);
		break;
	}
	}
}

static void
on_heartbeat(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->heartbeat_h = reactor_timer_add(&s->r, STATUS_HEARTBEAT_MS, on_heartbeat, s);
	publish(s);
}

/* ---- setup ---- */

static int
open_notify_socket(struct sup *s, struct err *e)
{
	struct sockaddr_un sa;
	size_t n = strlen(s->h->notify_sock);

	s->nsock = -1;
	if (n >= sizeof sa.sun_path)
		return 0;       /* only the fd channel then */
	s->nsock = compat_socket(AF_UNIX, SOCK_DGRAM, COMPAT_NONBLOCK);
	if (s->nsock < 0)
		return err_sys(e, ERR_IO, "cannot create the notify socket");
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, s->h->notify_sock, n);
	unlink(s->h->notify_sock);
	if (bind(s->nsock, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(s->nsock);
		s->nsock = -1;
		return err_sys(e, ERR_IO, "cannot bind %s", s->h->notify_sock);
	}
	s->nsock_h = reactor_io_add(&s->r, s->nsock, REACTOR_READ, on_notify_sock, s);
	return 0;
}

static int
claim_pidfile(struct sup *s, const struct sup_opts *o, struct err *e)
{
	struct pidfile_resv rv;
	struct pid_record other;
	int rs;

	if (pidrec_capture(getpid(), &s->self) < 0)
		return err_sys(e, ERR_IO, "cannot read our own process identity");
	s->self.pgid = getpgrp();
	if (o->reserved || o->handover)
		return 0;       /* the launching start publishes it / it is ours already */
	rs = pidfile_reserve(s->h->sup_pid, 2000, &rv, &other, e);
	if (rs < 0)
		return -1;
	if (rs == 1) {
		err_ctx_num(e, "pid", other.pid);
		return err_set(e, ERR_BUSY, "a supervisor is already running for %s (pid %ld)",
		    s->h->root, other.pid);
	}
	return pidfile_publish(&rv, &s->self, e);
}

int
supervisor_run(const struct home *h, const struct sup_opts *o, struct err *e)
{
	static struct sup s;
	static struct wsprobe ws;
	static struct updater upd;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };
	int fl, rc, adopted = 0;
	int64_t now;

	memset(&s, 0, sizeof s);
	s.h = h;
	s.ws = &ws;
	s.upd = &upd;
	s.upd_h = -1;
	s.upd_lock = -1;
	s.vfy_fd = s.vfy_io_h = s.vfy_timer_h = -1;
	s.ready_fd = o->ready_fd;
	s.initial = o->ready_fd >= 0;
	s.out_rd = s.out_wr = s.dw_fd = s.notify_rd = s.nsock = -1;
	s.out_h = s.srv_h = s.probe_h = s.dw_h = s.notify_h = s.nsock_h = -1;
	s.deadline_h = s.backoff_h = s.kill_h = s.heartbeat_h = s.healthy_h = s.final_h = -1;
	s.stopping_h = s.repair_h = -1;
	s.lfd = -1;
	s.backoff_ms = BACKOFF_MIN_MS;
	signal(SIGPIPE, SIG_IGN);
	if (settings_load(h->settings, &s.s, e) < 0)
		goto early;
	s.grace_s = s.s.grace_s;
	s.ready_timeout_s = o->ready_timeout_s > 0 ? o->ready_timeout_s : s.s.ready_timeout_s;
	if (home_prepare(h, e) < 0 || claim_pidfile(&s, o, e) < 0)
		goto early;
	if (o->handover) {
		/* the socket is as the previous image left it */
	} else if (s.s.socket_activation) {
		if ((s.lfd = sock_listen(h->socket, h->anchor, h->startup_lock, e)) < 0)
			goto unclaim;
	} else if (sock_prepare(h->socket, h->startup_lock, e) < 0) {
		goto unclaim;
	}
	(void)proc_set_subreaper();
	if (reactor_init(&s.r) < 0) {
		err_sys(e, ERR_IO, "cannot create the event loop");
		goto unclaim;
	}
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (reactor_signal_add(&s.r, sigs[i], on_signal, &s) < 0) {
			err_sys(e, ERR_IO, "cannot trap signal %d", sigs[i]);
			goto fini;
		}
	if (logcap_open(&s.log, h->srv_log, s.s.log_max_bytes, !o->handover) < 0) {
		err_sys(e, ERR_IO, "cannot open %s", h->srv_log);
		goto fini;
	}
	if (o->handover) {
		if ((adopted = adopt(&s, o, e)) < 0)
			goto fini;
		fl = fcntl(s.out_rd, F_GETFL);
		fcntl(s.out_rd, F_SETFL, fl | O_NONBLOCK);
		s.out_h = reactor_io_add(&s.r, s.out_rd, REACTOR_READ, on_output, &s);
	} else {
		int p[2];
		if (compat_pipe(p, 0) < 0) {
			err_sys(e, ERR_IO, "cannot create the output pipe");
			goto fini;
		}
		s.out_rd = p[0];
		s.out_wr = p[1];
		fl = fcntl(s.out_rd, F_GETFL);
		fcntl(s.out_rd, F_SETFL, fl | O_NONBLOCK);
		s.out_h = reactor_io_add(&s.r, s.out_rd, REACTOR_READ, on_output, &s);
	}
	if (s.s.readiness == READY_NOTIFY && open_notify_socket(&s, e) < 0)
		goto fini;

	now = wall_ms();
	str_fmt(s.st.server_id, sizeof s.st.server_id, "%ld-%llu", (long)getpid(), s.self.start_ticks);
	s.st.sup_pid = getpid();
	s.st.sup_start_ticks = s.self.start_ticks;
	str_fmt(s.st.boot_id, sizeof s.st.boot_id, "%s", s.self.boot_id);
	if (!o->handover || s.st.started_at == 0)
		s.st.started_at = now;
	str_fmt(s.st.readiness, sizeof s.st.readiness, "%s", readiness_name(s.s.readiness));
	str_fmt(s.st.socket, sizeof s.st.socket, "%s", h->socket);
	s.own_status = 1;
	logf_(o->handover ? "supervisor re-executed for %s" : "supervisor started for %s", h->root);
	s.heartbeat_h = reactor_timer_add(&s.r, STATUS_HEARTBEAT_MS, on_heartbeat, &s);
	if (s.lfd >= 0) {
		s.st.socket_activation = 1;
		s.repair_h = reactor_timer_add(&s.r, REPAIR_CHECK_MS, on_repair, &s);
	}
	if (install_paths(&s.pk, h->packages, e) < 0)
		goto fini;
	{
		char self[PATH_MAX];
		s.has_self_sha = proc_self_exe(self, sizeof self) == 0 &&
		    sig_file_sha256(self, s.self_sha, NULL) == 0;
	}
	if (o->handover && s.st.next_check_at > now)
		upd_schedule(&s, s.st.next_check_at - now);
	else
		upd_schedule(&s, rand_ms(UPD_FIRST_MIN_MS, UPD_FIRST_MAX_MS));
	if (adopted) {
		logf_("adopted server pid %ld", (long)s.srv);
		publish(&s);
	} else {
		sup_spawn(&s);
	}
	while (!s.r.stopping)
		if (reactor_run_once(&s.r, -1) < 0 && errno != EINTR) {
			logf_("event loop failed: %s", strerror(errno));
			break;
		}
	rc = s.exit_code;
	logcap_close(&s.log);
	reactor_fini(&s.r);
	return rc;
fini:
	reactor_fini(&s.r);
unclaim:
	{
		struct err e2;
		err_clear(&e2);
		if (!o->reserved)
			(void)pidfile_clear_own(h->sup_pid, &s.self, &e2);
	}
early:
	report_fail(&s, e->code == ERR_NONE ? ERR_OTHER : e->code, -1, 0, e->msg);
	return err_exit_status(e->code);
}
