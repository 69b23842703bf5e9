/*
 * sup_server.c -- the managed server's lifecycle as an explicit state
 * machine (after s6-supervise's state enum and its event x state action
 * table): every change of state goes through srv_event() and srv_enter().
 *
 * Restart policy (DESIGN.md "Readiness and liveness", like s6-supervise
 * and systemd's RestartSec): the minimum interval is between two *starts*
 * (1 s); a server that started longer ago than the interval restarts at
 * once when it crashes; each failure without 60 s of readiness doubles the
 * interval up to 60 s; an incarnation that was ready for 60 s resets it.
 * `restart` never / on-failure (a clean exit 0 ends supervision) / always.
 */
#include "core/sup.h"
#include "core/base/fsutil.h"
#include "core/sockprep.h"
#include "core/spawn.h"
#include "platform/compat.h"
#include "platform/proc.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FINAL_MS 5000            /* after KILL: how long to wait for the tree */
#define STOPPING_PUBLISH_MS 50   /* a stop that completes sooner never shows "stopping" */

/* ---- the table ---- */

#define I SA_IGNORE
static const unsigned char table[SRV_NSTATES][SEV_NEVENTS] = {
	/*                 START      READY     EXIT        TIMER         RESTART          STOP */
	[SRV_STOPPED]    = { SA_SPAWN, I,        I,          I,            SA_SPAWN,        SA_STOP_IDLE },
	[SRV_STARTING]   = { I,        SA_READY, SA_EXITED,  SA_NOT_READY, SA_TERM_RESTART, SA_TERM_STOP },
	[SRV_RUNNING]    = { I,        I,        SA_EXITED,  I,            SA_TERM_RESTART, SA_TERM_STOP },
	[SRV_BACKOFF]    = { I,        I,        I,          SA_SPAWN,     SA_SPAWN,        SA_STOP_IDLE },
	[SRV_RESTARTING] = { I,        I,        SA_RESPAWN, SA_KILL,      I,               SA_TERM_STOP },
	[SRV_STOPPING]   = { I,        I,        SA_GONE,    SA_KILL,      I,               I },
};
#undef I

static const char *const state_names[SRV_NSTATES] = {
	"stopped", "starting", "running", "backoff", "restarting", "stopping"
};

enum srv_action
srv_action_of(enum srv_state st, enum srv_event ev)
{
	if ((unsigned)st >= SRV_NSTATES || (unsigned)ev >= SEV_NEVENTS)
		return SA_UNDEFINED;
	return (enum srv_action)table[st][ev];
}

const char *
srv_state_name(enum srv_state st)
{
	return (unsigned)st < SRV_NSTATES ? state_names[st] : "unknown";
}

/* ---- small steps ---- */

static void
on_state_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->srv_timer_h = -1;
	srv_event(s, SEV_TIMER);
}

static void
arm(struct sup *s, int64_t ms)
{
	sup_cancel(s, &s->srv_timer_h);
	s->srv_timer_h = reactor_timer_add(&s->r, (uint64_t)(ms > 0 ? ms : 0), on_state_timer, s);
}

/* The one place the state changes; the state's timers go with it. */
static void
srv_enter(struct sup *s, enum srv_state st, const char *msg, int publish)
{
	s->trim = 1;            /* a change ran deep: see sup_trim */
	sup_cancel(s, &s->srv_timer_h);
	sup_cancel(s, &s->srv_pub_h);
	if (s->state == SRV_STARTING && st != SRV_STARTING)
		ready_end(s);
	if (st != s->state)
		s->forced = 0;          /* a KILL belongs to the stop or restart it ended */
	if (st != SRV_RUNNING)
		live_stop(s);
	s->state = st;
	str_copy(s->st.state, sizeof s->st.state, state_names[st]);
	if (st == SRV_RUNNING)
		live_start(s);
	if (msg)
		str_copy(s->st.message, sizeof s->st.message, msg);
	if (publish)
		sup_publish(s);
}

/* TERM (and CONT, for a stopped process) or KILL to every live child of
 * ours: adopted descendants (we are a subreaper).  Their number. */
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

/*
 * Without a subreaper (s->no_subreaper) an orphan of the server goes to
 * init, so a stop finds the server's descendants itself: the process tree
 * below the server and below what was found before, its process group
 * while it lives, and our session (we lead it), walked at the TERM and
 * again at every check (proc_tree).  Each is remembered by identity and
 * signalled by identity, so a pid reused meanwhile is never hit; its exit
 * is watched where the OS can (pidfd, kqueue), else the grace timer ends
 * the wait.  Static: only a stop touches these pages.
 */
#define STRAYS_MAX   128
#define STRAY_WATCHES 16
static struct proc_info strays[STRAYS_MAX];
static int strays_h[STRAYS_MAX];
static int nstrays, nstray_watches;

static void
on_stray_exit(struct reactor *r, int h, int status, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)status;
	for (int i = 0; i < nstrays; i++)
		if (strays_h[i] == h)
			strays_h[i] = -1;
	nstray_watches--;
	srv_check_gone(s);
}

static void
strays_walk(struct sup *s)
{
	struct proc_info found[64];
	pid_t roots[STRAYS_MAX + 1];
	int nroots = 0, n;

	if (s->srv > 0)
		roots[nroots++] = s->srv;
	for (int i = 0; i < nstrays; i++)
		roots[nroots++] = strays[i].pid;
	n = proc_tree(roots, nroots, s->srv > 0 ? (pid_t)s->srv_rec.pgid : 0,
	    getsid(0) == getpid() ? getpid() : 0, found, 64);
	for (int i = 0; i < n && nstrays < STRAYS_MAX; i++) {
		int k = nstrays++;
		strays[k] = found[i];
		strays_h[k] = -1;
		if (nstray_watches < STRAY_WATCHES &&
		    (strays_h[k] = reactor_pid_add(&s->r, found[i].pid, on_stray_exit, s)) >= 0)
			nstray_watches++;
		sup_log("stop: descendant pid %ld found by the tree walk", (long)found[i].pid);
	}
}

/* `sig` (0: none; TERM brings a CONT) to every remembered descendant still
 * alive, forgetting the others.  How many are alive. */
static int
strays_signal(struct sup *s, int sig)
{
	int live = 0;

	for (int i = 0; i < nstrays; i++) {
		struct proc_info *p = &strays[i];
		if (proc_matches(p->pid, p->start_ticks, NULL) != 1) {
			if (strays_h[i] >= 0) {
				sup_cancel(s, &strays_h[i]);
				nstray_watches--;
			}
			continue;
		}
		if (sig)
			(void)proc_signal_ident(p->pid, p->start_ticks, sig, 0);
		if (sig == SIGTERM)
			(void)proc_signal_ident(p->pid, p->start_ticks, SIGCONT, 0);
		strays_h[live] = strays_h[i];
		strays[live++] = *p;
	}
	nstrays = live;
	return live;
}

/* Signal what is left of the server's descendants: our children (with a
 * subreaper, orphans among them), else the tree walked from the server. */
static int
kill_descendants(struct sup *s, int sig)
{
	if (!s->no_subreaper)
		return kill_children(sig);
	strays_walk(s);
	return strays_signal(s, sig) + kill_children(sig);
}

static void
term_group(struct sup *s)
{
	if (s->srv > 0 && s->srv_rec.pgid > 1) {
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGTERM);
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGCONT);
	}
}

/* Hear the verdict on this incarnation; `code` says what kind of
 * failure (ERR_SPAWN, ERR_EXITED, ERR_NOT_READY), kept in s->fail_code. */
static enum srv_verdict
tell(struct sup *s, int ready, const char *why, enum err_code code)
{
	srv_outcome_fn *fn = s->outcome;

	s->outcome = NULL;
	s->fail_code = code;
	return fn ? fn(s, ready, why) : SRV_V_POLICY;
}

/* The server process has gone: record how, clear its pidfile, kill what
 * is left of its group (except while stopping: the stop does that). */
static int
note_exit(struct sup *s, char *msg, size_t cap)
{
	int status = s->srv_exit_status;
	int64_t now = wall_ms();
	struct err *e = sup_err();

	s->st.has_last_exit = 1;
	s->st.last_exit_at = now;
	if (status >= 0 && WIFSIGNALED(status)) {
		s->st.last_exit_signal = WTERMSIG(status);
		s->st.last_exit_code = -1;
		str_fmt(msg, cap, "server pid %ld was killed by signal %d", (long)s->srv,
		    WTERMSIG(status));
	} else {
		s->st.last_exit_signal = 0;
		s->st.last_exit_code = status >= 0 ? WEXITSTATUS(status) : -1;
		str_fmt(msg, cap, "server pid %ld exited with status %d", (long)s->srv,
		    s->st.last_exit_code);
	}
	sup_log("%s", msg);
	(void)pidfile_clear_own(s->h->srv_pid, &s->srv_rec, e);
	if (s->srv_rec.pgid > 1 && s->state != SRV_STOPPING)
		proc_signal_group((pid_t)s->srv_rec.pgid, SIGKILL);
	if (s->st.ready && now - s->st.ready_at >= SUP_HEALTHY_MS)
		s->interval_ms = SUP_BACKOFF_MIN_MS;
	s->srv = 0;
	s->st.server_pid = 0;
	s->st.server_pgid = 0;
	s->st.ready = 0;
	return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- spawning one incarnation ---- */

static void
on_server_exit(struct reactor *r, int h, int status, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h;
	s->srv_h = -1;
	s->srv_exit_status = status;
	srv_event(s, SEV_EXIT);
}

/* What one spawn needs only while it spawns (mapped for the call: a
 * resident supervisor does not keep 20 KB of it). */
struct spawn_scratch {
	char argbuf[16384];
	struct pidfile_resv rv;
	char *argv[SETTINGS_MAX_ARGS + 9], *env[9];
};

static int spawn_with(struct sup *s, struct spawn_scratch *k, struct err *e);

static int
spawn_one(struct sup *s, struct err *e)
{
	struct spawn_scratch *k = compat_map(sizeof *k);
	int rc;

	if (k == NULL)
		return err_sys(e, ERR_SPAWN, "cannot start the server");
	rc = spawn_with(s, k, e);
	compat_unmap(k, sizeof *k);
	return rc;
}

static int
spawn_with(struct sup *s, struct spawn_scratch *k, struct err *e)
{
	char *const argbuf = k->argbuf, **const argv = k->argv, **const env = k->env;
	struct pidfile_resv *const rvp = &k->rv;
	struct spawn_opts o;
	struct pid_record other;
	sigset_t mask;
	char banner[256];
	int rs, nfd;
	pid_t pid;

	if (settings_launch(&s->s, s->h, argbuf, sizeof k->argbuf, argv, env, e) < 0)
		return -1;
	/* what a crashed incarnation left at the path goes first (the first
	 * incarnation's path was prepared at startup) */
	if (s->st.incarnation > 0 && s->lfd < 0 &&
	    sock_prepare(s->h->socket, s->h->startup_lock, e) < 0)
		return -1;
	rs = pidfile_reserve(s->h->srv_pid, 2000, rvp, &other, e);
	if (rs == 1)
		return err_set(e, ERR_OTHER, "another app-server is recorded as running (pid %ld) in %s",
		    other.pid, s->h->srv_pid);
	if (rs < 0)
		return -1;
	if ((nfd = ready_prepare(s, e)) < -1) {
		pidfile_abandon(rvp);
		return -1;
	}
	str_fmt(banner, sizeof banner, "--- appd: starting %.180s (incarnation %d) ---\n",
	    argv[0], s->st.incarnation + 1);
	(void)logcap_write(&s->log, banner, strlen(banner));
	reactor_child_sigmask(&s->r, &mask);
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.cwd = s->h->root;
	o.out_fd = s->out_wr;
	o.listen_fd = s->lfd;
	o.notify_fd = nfd;
	o.notify_socket = s->nsock >= 0 ? s->h->notify_sock : NULL;
	o.watchdog_usec = (unsigned long long)s->s.live.watchdog_s * 1000000ull;
	o.sigmask = &mask;
	o.env_add = (const char *const *)env;
	s->st.app_server_version[0] = '\0';
	pid = spawn_server(&o, e);
	if (pid < 0) {
		ready_end(s);
		pidfile_abandon(rvp);
		return -1;
	}
	s->srv = pid;
	/* fires on a later turn, never from inside this call */
	s->srv_h = reactor_child_add(&s->r, pid, on_server_exit, s);
	if (pidrec_capture(pid, &s->srv_rec) < 0) {
		/* it already exited: the child watch reports it */
		memset(&s->srv_rec, 0, sizeof s->srv_rec);
		s->srv_rec.pid = pid;
		s->srv_rec.pgid = pid;
		pidfile_abandon(rvp);
	} else {
		struct err *pe = sup_err();

		s->srv_rec.pgid = pid;
		s->pidfile_behind = pidfile_publish(rvp, &s->srv_rec, pe) < 0;
		if (s->pidfile_behind)
			sup_state_write_failed(s, pe->msg);
	}
	s->st.incarnation++;
	s->st.server_pid = pid;
	s->st.server_pgid = pid;
	s->st.ready = 0;
	sup_log("started server pid %ld: %s", (long)pid, argv[0]);
	return 0;
}

static void policy_restart(struct sup *s, int clean, const char *msg);

/* The last exit as a process exit status: its code, or 128 + signal. */
static int
server_status(const struct sup *s)
{
	if (s->st.last_exit_signal > 0)
		return 128 + s->st.last_exit_signal;
	return s->st.last_exit_code > 0 ? s->st.last_exit_code : 0;
}

static void
a_spawn(struct sup *s)
{
	enum srv_verdict v;
	enum err_code code;
	struct err *se;
	char why[sizeof se->msg];
	int rc;

	s->outcome = s->outcome_next;
	s->outcome_next = NULL;
	s->st.next_restart_at = 0;
	s->started_ms = (int64_t)reactor_clock_ms();
	/* the error record is mapped for the call too (see spawn_scratch) */
	if ((se = compat_map(sizeof *se)) == NULL) {
		code = ERR_SPAWN;
		str_fmt(why, sizeof why, "no memory for the spawn: %s", strerror(errno));
	} else {
		err_clear(se);
		rc = spawn_one(s, se);
		code = se->code == ERR_NONE ? ERR_SPAWN : se->code;
		str_copy(why, sizeof why, se->msg);
		compat_unmap(se, sizeof *se);
		if (rc == 0) {
			srv_enter(s, SRV_STARTING, "starting", 1);
			arm(s, (int64_t)s->ready_timeout_s * 1000);
			ready_start(s);
			return;
		}
	}
	sup_log("cannot start the server: %s", why);
	s->st.spawn_failures++;
	str_copy(s->st.spawn_error, sizeof s->st.spawn_error, why);
	srv_enter(s, SRV_BACKOFF, why, 0);
	v = tell(s, 0, why, code);
	if (v == SRV_V_SHUTDOWN)
		srv_shutdown(s, 1, why);
	else if (v == SRV_V_RESTART)
		a_spawn(s);
	else
		policy_restart(s, 0, why);
}

/* After a failure (or an exit under `always`): restart, at once when the
 * last start is longer ago than the interval, else when it is over. */
static void
policy_restart(struct sup *s, int clean, const char *msg)
{
	int64_t now = (int64_t)reactor_clock_ms(), delay, next;
	char m[128];

	if (s->s.restart == RESTART_NEVER || (clean && s->s.restart == RESTART_ON_FAILURE)) {
		/* in the foreground (`appd run`, PID 1 of a container) the
		 * supervisor exits as the server did, as tini and dumb-init do */
		srv_shutdown(s, s->foreground ? server_status(s) : 0, msg);
		return;
	}
	delay = s->started_ms + s->interval_ms - now;
	s->st.backoff_ms = s->interval_ms;
	s->st.restarts++;
	next = s->interval_ms * 2 > SUP_BACKOFF_MAX_MS ? SUP_BACKOFF_MAX_MS : s->interval_ms * 2;
	if (delay <= 0) {
		sup_log("restarting now (the last start was over %lld ms ago)",
		    (long long)s->interval_ms);
		s->interval_ms = next;
		a_spawn(s);
		return;
	}
	str_fmt(m, sizeof m, "restarting in %lld ms", (long long)delay);
	sup_log("%s (minimum interval between starts %lld ms)", m, (long long)s->interval_ms);
	s->interval_ms = next;
	s->st.next_restart_at = wall_ms() + delay;
	srv_enter(s, SRV_BACKOFF, m, 1);
	arm(s, delay);
}

/* ---- the actions ---- */

static void
a_ready(struct sup *s)
{
	s->st.ready = 1;
	s->st.ready_at = wall_ms();
	s->st.next_restart_at = 0;
	sup_log("server pid %ld is ready (%s)", (long)s->srv, readiness_name(s->s.readiness));
	srv_enter(s, SRV_RUNNING, "ready", 1);
	(void)tell(s, 1, NULL, ERR_NONE);
}

static void
a_term_restart(struct sup *s)
{
	term_group(s);
	srv_enter(s, SRV_RESTARTING, NULL, 1);
	arm(s, (int64_t)s->grace_s * 1000);
}

static void
a_not_ready(struct sup *s)
{
	char msg[512];
	const char *pe = ready_last_error(s);

	str_fmt(msg, sizeof msg, "app-server did not become ready on %s within %d s (readiness %s%s%s)",
	    s->h->socket, s->ready_timeout_s, readiness_name(s->s.readiness), pe[0] ? ": " : "", pe);
	sup_log("%s", msg);
	str_copy(s->st.message, sizeof s->st.message, msg);
	switch (tell(s, 0, msg, ERR_NOT_READY)) {
	case SRV_V_SHUTDOWN:
		srv_shutdown(s, 1, msg);
		return;
	case SRV_V_RESTART:
		s->respawn_failed = 0;
		break;
	case SRV_V_POLICY:
		s->respawn_failed = 1;
		break;
	}
	a_term_restart(s);
}

static void
a_exited(struct sup *s)
{
	char msg[256];
	int clean = note_exit(s, msg, sizeof msg);

	srv_enter(s, SRV_BACKOFF, msg, 0);
	switch (tell(s, 0, msg, ERR_EXITED)) {
	case SRV_V_SHUTDOWN:
		srv_shutdown(s, 1, msg);
		break;
	case SRV_V_RESTART:
		a_spawn(s);
		break;
	case SRV_V_POLICY:
		policy_restart(s, clean, msg);
		break;
	}
}

static void
a_respawn(struct sup *s)
{
	char msg[256];

	(void)note_exit(s, msg, sizeof msg);
	srv_enter(s, SRV_BACKOFF, msg, 0);
	if (s->respawn_failed) {
		s->respawn_failed = 0;
		policy_restart(s, 0, msg);
		return;
	}
	a_spawn(s);
}

static void
on_stopping_publish(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->srv_pub_h = -1;
	sup_publish(s);
}

static void
a_term_stop(struct sup *s)
{
	if (s->no_subreaper)
		strays_walk(s);         /* while the parent links still hold */
	term_group(s);
	kill_descendants(s, SIGTERM);
	sup_unwatch_run(s);     /* its slow close overlaps the server's exit */
	srv_enter(s, SRV_STOPPING, NULL, 0);
	s->srv_pub_h = reactor_timer_add(&s->r, STOPPING_PUBLISH_MS, on_stopping_publish, s);
	arm(s, (int64_t)s->grace_s * 1000);
}

static void
a_stop_idle(struct sup *s)
{
	srv_enter(s, SRV_STOPPING, NULL, 0);
	kill_descendants(s, SIGTERM);
	sup_unwatch_run(s);
	arm(s, (int64_t)s->grace_s * 1000);
	srv_check_gone(s);
}

static void
a_kill(struct sup *s)
{
	if (!s->forced) {
		s->forced = 1;
		sup_log("grace period over: SIGKILL to the server's process group%s",
		    s->state == SRV_STOPPING ? " and descendants" : "");
		if (s->srv > 0 && s->srv_rec.pgid > 1)
			proc_signal_group((pid_t)s->srv_rec.pgid, SIGKILL);
		if (s->state == SRV_STOPPING)
			kill_descendants(s, SIGKILL);
		arm(s, FINAL_MS);
		return;
	}
	/* still there FINAL_MS after KILL (uninterruptible sleep): go on */
	sup_log("processes still present %d s after SIGKILL; going on without them",
	    FINAL_MS / 1000);
	if (s->srv_h >= 0)
		sup_cancel(s, &s->srv_h);
	if (s->state == SRV_STOPPING) {
		s->srv = 0;
		sup_finish(s);
		return;
	}
	s->srv_exit_status = -1;
	a_respawn(s);
}

static void
a_gone(struct sup *s)
{
	char msg[256];

	(void)note_exit(s, msg, sizeof msg);
	str_copy(s->st.message, sizeof s->st.message, msg);
	srv_check_gone(s);
}

/* ---- the interface ---- */

/* What each action of the table runs (SA_UNDEFINED and SA_IGNORE: nothing). */
static void (*const actions[])(struct sup *) = {
	[SA_SPAWN] = a_spawn,
	[SA_READY] = a_ready,
	[SA_NOT_READY] = a_not_ready,
	[SA_EXITED] = a_exited,
	[SA_TERM_RESTART] = a_term_restart,
	[SA_RESPAWN] = a_respawn,
	[SA_TERM_STOP] = a_term_stop,
	[SA_STOP_IDLE] = a_stop_idle,
	[SA_KILL] = a_kill,
	[SA_GONE] = a_gone,
};

void
srv_event(struct sup *s, enum srv_event ev)
{
	enum srv_action a = srv_action_of(s->state, ev);

	if (a == SA_SPAWN && s->state == SRV_BACKOFF && ev == SEV_TIMER)
		sup_log("backoff over");
	if (actions[a] != NULL)
		actions[a](s);
}

void
srv_set_outcome(struct sup *s, srv_outcome_fn *outcome)
{
	s->outcome_next = outcome;
}

void
srv_restart(struct sup *s, const char *why, srv_outcome_fn *outcome)
{
	sup_log("restarting the server: %s", why);
	/* whoever waits on the current incarnation (the launching start, an
	 * update being verified) hears about the next one instead */
	if (outcome == NULL)
		outcome = s->outcome ? s->outcome : s->outcome_next;
	s->outcome = NULL;
	s->outcome_next = outcome;
	s->interval_ms = SUP_BACKOFF_MIN_MS;
	s->respawn_failed = 0;
	str_copy(s->st.message, sizeof s->st.message, why);
	srv_event(s, SEV_RESTART);
}

void
srv_fail(struct sup *s, const char *why)
{
	sup_log("restarting the server: %s", why);
	str_copy(s->st.message, sizeof s->st.message, why);
	/* as a start that was not ready: the restart counts as a failure */
	s->respawn_failed = 1;
	srv_event(s, SEV_RESTART);
}

void
srv_shutdown(struct sup *s, int code, const char *why)
{
	if (s->state == SRV_STOPPING)
		return;
	s->exit_code = code;
	sup_log("shutting down: %s", why);
	upd_flow_abandon(s);
	refresh_cancel(s);
	s->outcome = s->outcome_next = NULL;
	str_copy(s->st.message, sizeof s->st.message, why);
	srv_event(s, SEV_STOP);
}

void
srv_check_gone(struct sup *s)
{
	if (s->state != SRV_STOPPING || s->srv > 0)
		return;
	if (kill_descendants(s, s->forced ? SIGKILL : 0) > 0)
		return;
	sup_finish(s);
}

int
srv_adopt(struct sup *s, const struct pid_record *rec, int ready)
{
	s->srv_h = reactor_child_add(&s->r, (pid_t)rec->pid, on_server_exit, s);
	if (s->srv_h < 0)
		return -1;
	s->srv = (pid_t)rec->pid;
	s->srv_rec = *rec;
	s->started_ms = (int64_t)reactor_clock_ms();
	if (ready) {
		srv_enter(s, SRV_RUNNING, "adopted after a self-refresh", 1);
		return 0;
	}
	srv_enter(s, SRV_STARTING, "adopted after a self-refresh", 1);
	arm(s, (int64_t)s->ready_timeout_s * 1000);
	ready_start(s);
	return 0;
}
