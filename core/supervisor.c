/*
 * supervisor.c -- see supervisor.h (what it does) and sup.h (how the
 * files share the work).  This file: setup and the loop, signals, the
 * server's output, publication of the state, and the control socket's
 * answers.  It sleeps in the reactor until an event: an idle supervisor
 * has no periodic timer and writes nothing.
 */
#include "core/sup.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"
#include "core/base/entropy.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/net/wsprobe.h"
#include "core/lock.h"
#include "core/sockprep.h"
#include "core/update/sig.h"
#include "core/version.h"
#include "platform/compat.h"
#include "platform/dirwatch.h"
#include "platform/proc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small shared helpers ---- */

void
sup_log(const char *fmt, ...)
{
	char t[32], buf[1024];
	int n;
	va_list ap;

	iso8601_ms(wall_ms(), t);
	n = fmt_n(buf, sizeof buf, "%s appd[%ld]: ", t, (long)getpid());
	va_start(ap, fmt);
	fmt_v(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(buf);
	buf[n++] = '\n';
	(void)fd_write_all(2, buf, (size_t)n);
}

struct err *
sup_err(void)
{
	static struct err e;

	err_clear(&e);
	return &e;
}

void
sup_cancel(struct sup *s, int *h)
{
	if (*h >= 0)
		reactor_del(&s->r, *h);
	*h = -1;
}

struct sup_probes *
sup_probes(struct sup *s)
{
	if (s->pr == NULL)
		s->pr = compat_map(sizeof *s->pr);
	s->trim = 1;
	return s->pr;
}

int
sup_ws_running(const struct sup *s)
{
	return s->pr != NULL && wsprobe_running(&s->pr->ws);
}

int
sup_hp_running(const struct sup *s)
{
	return s->pr != NULL && hprobe_running(&s->pr->hp);
}

void
sup_probes_cancel(struct sup *s)
{
	if (s->pr != NULL) {
		wsprobe_cancel(&s->pr->ws);
		hprobe_cancel(&s->pr->hp);
	}
}

/*
 * After a turn that asked for it (s->trim): return to the kernel what no
 * longer runs -- the probes' storage, the update flow's -- and the stack
 * below this frame, which a check, a probe or a spawn may have used deep
 * (a 30 KB WebSocket probe, a TLS handshake): called from the loop, the
 * shallowest point, so nothing below is live.
 */
static void
sup_trim(struct sup *s)
{
	upd_flow_idle(s);
	if (!s->trim)
		return;
	s->trim = 0;
	if (s->pr != NULL && !sup_ws_running(s) && !sup_hp_running(s)) {
		compat_unmap(s->pr, sizeof *s->pr);
		s->pr = NULL;
	}
	compat_stack_release();
}

int64_t
sup_rand_ms(int64_t lo, int64_t hi)
{
	uint64_t v;
	struct err *e = sup_err();

	if (hi <= lo)
		return lo;
	if (entropy_get(&v, sizeof v, e) < 0)
		return lo + (hi - lo) / 2;
	return lo + (int64_t)(v % (uint64_t)(hi - lo + 1));
}

/* ---- publication ---- */

/* The record as it is now: what status.json and the control socket say. */
static void
snapshot(struct sup *s, struct sup_status *out)
{
	*out = s->st;
	out->last_seen_at = wall_ms();
	/* the backoff resets after 60 s of readiness (applied at the next exit) */
	if (s->state == SRV_RUNNING && out->last_seen_at - s->st.ready_at >= SUP_HEALTHY_MS)
		out->backoff_ms = 0;
}

/* Another live supervisor's record in status.json?  Then it owns the
 * file and we never write it again (Heddle's heartbeat stole records
 * back; seed-contract.md §7.5). */
static int
record_taken(struct sup *s, struct sup_status *cur)
{
	struct err *e = sup_err();

	return status_read(s->h->status, cur, e) == 0 && cur->server_id[0] != '\0' &&
	    strcmp(cur->server_id, s->st.server_id) != 0 &&
	    proc_matches((pid_t)cur->sup_pid, cur->sup_start_ticks, cur->boot_id) == 1;
}

void
sup_state_write_failed(struct sup *s, const char *msg)
{
	sup_log("%s", msg);
	str_copy(s->st.state_write_error, sizeof s->st.state_write_error, msg);
	s->st.state_write_error_at = wall_ms();
}

/* Every change: status.json first, then the control socket's watchers
 * (who therefore learn of a write that failed, and are told even when
 * nothing can be written: a full or read-only disk). */
void
sup_publish(struct sup *s)
{
	/* the record's copy is mapped for the call, as status_write's text
	 * is: 2 KB less for the idle supervisor to keep resident */
	struct sup_status *snap = compat_map(sizeof *snap);
	struct err *e = sup_err();

	if (snap == NULL) {
		sup_state_write_failed(s, "cannot publish the state: out of memory");
	} else if (s->own_status) {
		if (s->st.incarnation > 0 && record_taken(s, snap)) {
			sup_log("status record now owned by another live supervisor; no longer writing it");
			s->own_status = 0;
		}
	}
	if (snap != NULL && s->own_status) {
		snapshot(s, snap);
		if (status_write(s->h->status, snap, e) < 0) {
			sup_state_write_failed(s, e->msg);
		} else if (s->st.state_write_error[0] != '\0' && !s->pidfile_behind) {
			sup_log("state files written again");
			s->st.state_write_error[0] = '\0';
			s->st.state_write_error_at = 0;
		}
	}
	compat_unmap(snap, sizeof *snap);
	ctl_notify(&s->ctl);
	if (s->foreground)
		mgr_update(&s->mgr, &s->st);
}

static void
on_watchdog(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)h; (void)ev;
	mgr_watchdog(&s->mgr);
	s->wd_h = reactor_timer_add(r, s->mgr.watchdog_ms, on_watchdog, s);
}

/* The control socket's answers: the live record. */
static int
answer(void *arg, const char *request, char *buf, size_t cap)
{
	struct sup *s = arg;
	struct sup_status *snap;
	int n;

	s->trim = 1;            /* after the turn: the answer's stack */
	if (strcmp(request, "status") != 0 || (snap = compat_map(sizeof *snap)) == NULL)
		return -1;
	snapshot(s, snap);
	n = status_format(snap, buf, cap);
	compat_unmap(snap, sizeof *snap);
	return n;
}

/* ---- the launching start's report (the ready pipe) ---- */

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
}

/* The first incarnation's verdict goes to the waiting `start`; a failed
 * first start ends supervision and leaves nothing running. */
static enum srv_verdict
initial_outcome(struct sup *s, int ready, const char *why)
{
	char line[64];

	if (ready) {
		str_fmt(line, sizeof line, "ready %ld\n", (long)s->srv);
		report(s, line);
		return SRV_V_POLICY;
	}
	if (s->fail_code == ERR_EXITED)
		report_fail(s, ERR_EXITED, s->st.last_exit_code, s->st.last_exit_signal, why);
	else
		report_fail(s, s->fail_code, -1, 0, why);
	return SRV_V_SHUTDOWN;
}

int
sup_report_parse(const char *line, struct sup_report *out)
{
	char code[64];
	const char *p = line;
	long long pid, xc, sig;
	int n;

	memset(out, 0, sizeof *out);
	out->exit_code = -1;
	if (scan_lit(&p, "ready ") == 0 && scan_ll(&p, &pid) == 0) {
		out->server_pid = (long)pid;
		out->ready = 1;
		return 0;
	}
	p = line;
	if (scan_lit(&p, "fail ") < 0 || scan_word(&p, code, sizeof code) < 0 ||
	    scan_lit(&p, " ") < 0 || scan_ll(&p, &xc) < 0 || scan_lit(&p, " ") < 0 ||
	    scan_ll(&p, &sig) < 0 || scan_lit(&p, " ") < 0)
		return -1;
	out->exit_code = (int)xc;
	out->exit_signal = (int)sig;
	out->code = ERR_OTHER;
	for (int c = ERR_OTHER; c <= ERR_STOP_TIMEOUT; c++)
		if (strcmp(err_code_name((enum err_code)c), code) == 0)
			out->code = (enum err_code)c;
	str_fmt(out->message, sizeof out->message, "%s", p);
	n = (int)strlen(out->message);
	while (n > 0 && out->message[n - 1] == '\n')
		out->message[--n] = '\0';
	return 0;
}

/* ---- the end ---- */

void
sup_unwatch_run(struct sup *s)
{
	sup_cancel(s, &s->activation_h);
	if (s->activation_wd >= 0)
		dirwatch_close(s->activation_wd);
	s->activation_wd = -1;
}

void
sup_finish(struct sup *s)
{
	struct err *e = sup_err();
	char sp[HOME_PATH_MAX + 32];

	if (s->finished)
		return;
	s->finished = 1;
	upd_flow_abandon(s);
	refresh_cancel(s);
	sup_unwatch_run(s);
	ctl_close(&s->ctl, s->h->ctl_sock, 0);
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
	s->st.next_check_at = 0;
	s->st.checking = 0;
	s->state = SRV_STOPPED;
	str_copy(s->st.state, sizeof s->st.state, srv_state_name(SRV_STOPPED));
	if (!s->exit_code)
		str_copy(s->st.message, sizeof s->st.message, "stopped");
	sup_publish(s);
	(void)pidfile_clear_own(s->h->sup_pid, &s->self, e);
	str_fmt(sp, sizeof sp, "%s/%s", s->h->state, SUP_STOP_REQUEST);
	unlink(sp);
	sup_log("supervisor exiting with status %d", s->exit_code);
	reactor_stop(&s->r);
}

/* ---- events that are not the server's ---- */

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

/* Without socket activation the server binds the control socket itself;
 * something changed in run/.  A running server whose socket path is gone
 * (a tmp cleaner, a user) cannot be reached any more, though it still
 * runs: say so in status (socketMissing) and restart it through the
 * normal restart path, so that it binds again (README "Commands"). */
static void
socket_watch(struct sup *s)
{
	struct stat st;
	int missing = lstat(s->h->socket, &st) < 0 || !S_ISSOCK(st.st_mode);

	if (!missing) {
		if (s->st.socket_missing) {
			s->st.socket_missing = 0;
			sup_publish(s);
		}
		return;
	}
	if (s->state != SRV_RUNNING || s->st.socket_missing)
		return;
	s->st.socket_missing = 1;
	sup_log("the control socket %s is gone while the server runs; restarting the server "
	    "so that it binds again", s->h->socket);
	srv_restart(s, "the control socket was removed", NULL);
}

/* Something changed in run/: readiness may have come; with socket
 * activation keep the public path pointing at our listener, else notice
 * a removed socket. */
static void
on_run_dir(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	int k;

	(void)r; (void)h; (void)ev;
	dirwatch_drain(s->activation_wd);
	ready_dir_changed(s);
	if (s->lfd < 0) {
		socket_watch(s);
		return;
	}
	k = sock_repair(s->h->socket, s->h->anchor);
	if (k == 1) {
		s->st.socket_repairs++;
		s->st.last_repair_at = wall_ms();
		sup_log("control socket path %s was missing or replaced; re-created it", s->h->socket);
		str_copy(s->st.message, sizeof s->st.message, "re-created the control socket path");
		sup_publish(s);
	} else if (k < 0) {
		sup_log("cannot repair the control socket path %s: %s", s->h->socket, strerror(errno));
	}
}

static int
read_stop_grace(struct sup *s)
{
	char path[HOME_PATH_MAX + 32], buf[256];
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
reload_settings(struct sup *s)
{
	struct settings *ns = compat_map(sizeof *ns);   /* 15 KB, for the call */
	struct err *e = sup_err();

	if (ns == NULL || settings_load(s->h->settings, ns, e) < 0) {
		sup_log("SIGHUP: keeping the old settings: %s", ns ? e->msg : strerror(errno));
		compat_unmap(ns, sizeof *ns);
		return;
	}
	settings_assign(&s->s, ns);
	compat_unmap(ns, sizeof *ns);
	s->ready_timeout_s = s->s.ready_timeout_s;
	s->grace_s = s->s.grace_s;
	str_copy(s->st.readiness, sizeof s->st.readiness, readiness_name(s->s.readiness));
}

static void
reap_descendants(struct sup *s)
{
	pid_t kids[256];
	int n = proc_children(getpid(), kids, 256);

	for (int i = 0; i < n; i++) {
		int status;
		if (reactor_child_watched(&s->r, kids[i]))
			continue;       /* the server, a probe's or the --version
			                 * child: reaped by its owner's watch */
		if (waitpid(kids[i], &status, WNOHANG) > 0)
			sup_log("reaped descendant %ld", (long)kids[i]);
		else if (s->forced)
			kill(kids[i], SIGKILL);
	}
	srv_check_gone(s);
}

static void
on_signal(struct reactor *r, int h, int sig, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		s->grace_s = read_stop_grace(s);
		srv_shutdown(s, 0, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	case SIGHUP:
		if (s->state == SRV_STOPPING)
			break;
		reload_settings(s);
		srv_restart(s, "restart requested", NULL);
		break;
	case SIGUSR1:
		upd_flow_request(s);
		break;
	case SIGCHLD:
		reap_descendants(s);
		break;
	}
}

/* ---- setup ---- */

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

/* The output pipe (new, or handed over) on the reactor. */
static int
open_output(struct sup *s, int handover, struct err *e)
{
	int p[2];

	if (!handover) {
		if (compat_pipe(p, 0) < 0)
			return err_sys(e, ERR_IO, "cannot create the output pipe");
		s->out_rd = p[0];
		s->out_wr = p[1];
	}
	if (fd_nonblock(s->out_rd) < 0)
		return err_sys(e, ERR_IO, "output pipe");
	s->out_h = reactor_io_add(&s->r, s->out_rd, REACTOR_READ, on_output, s);
	return s->out_h < 0 ? err_sys(e, ERR_IO, "cannot watch the output pipe") : 0;
}

static void
init_handles(struct sup *s, const struct sup_opts *o)
{
	s->ready_fd = o->ready_fd;
	s->out_rd = s->out_wr = s->notify_rd = s->notify_wr = s->nsock = -1;
	s->out_h = s->srv_h = s->probe_h = s->notify_h = s->nsock_h = -1;
	s->srv_timer_h = s->srv_pub_h = s->upd_h = s->upd_lock = -1;
	s->lfd = s->activation_h = s->activation_wd = -1;
	s->ctl.lfd = s->ctl.lh = -1;
	s->wd_h = -1;
	s->live_h = -1;
	s->wdog_h = -1;
	s->foreground = o->foreground;
	s->interval_ms = SUP_BACKOFF_MIN_MS;
	s->state = SRV_STOPPED;
}

/* Everything before the first event: the state's identity and the
 * sockets, watches and schedule the loop serves. */
static int
setup(struct sup *s, const struct sup_opts *o, int *adopted, struct err *e)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };
	const struct home *h = s->h;
	int64_t now;

	if (s->foreground) {
		if (mgr_init(&s->mgr, o->s6_fd >= 3 ? o->s6_fd : -1) < 0)
			sup_log("cannot notify the service manager: %s", strerror(errno));
	}
	if (proc_set_subreaper() < 0) {
		s->no_subreaper = 1;
		s->st.no_subreaper = 1;
		sup_log("no child subreaper on this host (%s): stop walks the process "
		    "tree; a descendant that double-forks out of the server's group "
		    "and session cannot be tracked", strerror(errno));
	}
	(void)proc_set_name("appd");
	if (reactor_init(&s->r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	/* the manager's watchdog: the only periodic wakeup it adds */
	if (s->foreground && s->mgr.watchdog_ms > 0)
		s->wd_h = reactor_timer_add(&s->r, s->mgr.watchdog_ms, on_watchdog, s);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (reactor_signal_add(&s->r, sigs[i], on_signal, s) < 0)
			return err_sys(e, ERR_IO, "cannot trap signal %d", sigs[i]);
	if (logcap_open(&s->log, h->srv_log, s->s.log_max_bytes, !o->handover) < 0)
		return err_sys(e, ERR_IO, "cannot open %s", h->srv_log);
	if (o->handover && (*adopted = refresh_adopt(s, o, e)) < 0)
		return -1;
	if (open_output(s, o->handover, e) < 0)
		return -1;
	if ((s->s.readiness == READY_NOTIFY || s->s.live.watchdog_s > 0) &&
	    ready_open_notify_socket(s, e) < 0)
		return -1;
	if (ctl_listen(&s->ctl, &s->r, h->ctl_sock, o->handover ? o->h_ctl : -1, answer, s, e) < 0)
		return -1;
	now = wall_ms();
	str_fmt(s->st.server_id, sizeof s->st.server_id, "%ld-%llu", (long)getpid(),
	    s->self.start_ticks);
	s->st.sup_pid = getpid();
	s->st.sup_start_ticks = s->self.start_ticks;
	str_copy(s->st.boot_id, sizeof s->st.boot_id, s->self.boot_id);
	str_copy(s->st.machine_id, sizeof s->st.machine_id, h->machine);
	str_copy(s->st.hostname, sizeof s->st.hostname, h->hostname);
	if (!o->handover || s->st.started_at == 0)
		s->st.started_at = now;
	str_copy(s->st.readiness, sizeof s->st.readiness, readiness_name(s->s.readiness));
	str_copy(s->st.socket, sizeof s->st.socket, h->socket);
	s->own_status = 1;
	if (s->lfd >= 0)
		s->st.socket_activation = 1;
	/* run/ is watched for the supervisor's life, one inotify instance
	 * for everything: repair (activation), a removed socket
	 * (socket_watch), the server's bind while it starts
	 * (ready_dir_changed).  One, because closing one waits for an RCU
	 * grace period (sup_unwatch_run). */
	if ((s->activation_wd = dirwatch_open(h->run)) >= 0)
		s->activation_h = reactor_io_add(&s->r, s->activation_wd, REACTOR_READ,
		    on_run_dir, s);
	upd_flow_init(s, o->handover, now);
	return 0;
}

int
supervisor_run(const struct home *h, const struct sup_opts *o, struct err *e)
{
	static struct sup s;           /* zero: .bss, touched only where used */
	int adopted = 0, rc;

	s.h = h;
	init_handles(&s, o);
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
	if (setup(&s, o, &adopted, e) < 0)
		goto fini;
	sup_log(o->handover ? "supervisor re-executed for %s" : "supervisor started for %s", h->root);
	if (adopted) {
		sup_log("adopted server pid %ld", (long)s.srv);
	} else {
		if (s.ready_fd >= 0)
			srv_set_outcome(&s, initial_outcome);
		srv_event(&s, SEV_START);
	}
	while (!s.r.stopping) {
		if (reactor_run_once(&s.r, -1) < 0 && errno != EINTR) {
			sup_log("event loop failed: %s", strerror(errno));
			break;
		}
		sup_trim(&s);
	}
	rc = s.exit_code;
	logcap_close(&s.log);
	reactor_fini(&s.r);
	return rc;
fini:
	ctl_close(&s.ctl, s.ctl.lfd >= 0 ? h->ctl_sock : NULL, 0);
	reactor_fini(&s.r);
unclaim:
	{
		if (!o->reserved)
			(void)pidfile_clear_own(h->sup_pid, &s.self, sup_err());
	}
early:
	report_fail(&s, e->code == ERR_NONE ? ERR_OTHER : e->code, -1, 0, e->msg);
	return err_exit_status(e->code);
}
