/*
 * sup.h -- the supervisor's insides, shared by its files (not a public
 * interface; see supervisor.h for that).
 *
 *   supervisor.c   setup, the event loop, signals, publication of the
 *                  state (status.json on changes, the control socket live)
 *   sup_server.c   the server's lifecycle: one enum, one transition table
 *                  (srv_event), spawn, exit, the restart policy, stop
 *   sup_ready.c    readiness: connect, notify (fd and NOTIFY_SOCKET),
 *                  codex-initialize, none
 *   sup_update.c   the update flow: schedule, check, switch, and "restart
 *                  onto release R, tell me ready or not" (srv_restart)
 *   sup_refresh.c  self-refresh: probe the new appd, execve it in place
 *                  with the fds handed over, adopt the server child
 *
 * Storage: one static `struct sup` per process; nothing is allocated.
 * Every timer and watch handle is -1 when not armed.
 */
#ifndef APPD_SUP_H
#define APPD_SUP_H

#include "core/childrun.h"
#include "core/control.h"
#include "core/home.h"
#include "core/logcap.h"
#include "core/mgrnotify.h"
#include "core/hprobe.h"
#include "core/pidfile.h"
#include "core/settings.h"
#include "core/status.h"
#include "core/supervisor.h"
#include "core/update/install.h"
#include "core/update/updater.h"
#include "core/net/wsprobe.h"
#include "platform/reactor.h"

#include <stdint.h>
#include <sys/types.h>

/* ---- the server's lifecycle (sup_server.c) ---- */

/*
 * States of the managed server, as published in status.json's "state"
 * (srv_state_name).  Each state owns at most one timer, `srv_timer_h`,
 * cancelled whenever the state changes:
 *
 *   stopped     no server and none coming (before the first start, and
 *               at the end of supervision)                 -
 *   starting    spawned; readiness not yet seen            readiness deadline
 *   running     ready                                      -
 *   backoff     exited; the restart is scheduled           the restart
 *   restarting  TERM sent; a new incarnation follows       grace, then KILL
 *   stopping    TERM sent; the supervisor exits after      grace, then KILL,
 *               the tree is gone                           then give up
 */
enum srv_state {
	SRV_STOPPED = 0,
	SRV_STARTING,
	SRV_RUNNING,
	SRV_BACKOFF,
	SRV_RESTARTING,
	SRV_STOPPING,
	SRV_NSTATES
};

enum srv_event {
	SEV_START = 0,   /* the first start */
	SEV_READY,       /* the readiness check passed */
	SEV_EXIT,        /* the server exited (srv_exit_status) */
	SEV_TIMER,       /* the state's own timer fired */
	SEV_RESTART,     /* restart: HUP, an update, a rollback, unhealthy */
	SEV_STOP,        /* shutdown: TERM/INT, or the restart policy ended */
	SEV_NEVENTS
};

/* What a transition does (the cells of the table). */
enum srv_action {
	SA_UNDEFINED = 0, /* never in the table: every cell is deliberate */
	SA_IGNORE,        /* the event means nothing in this state */
	SA_SPAWN,         /* start an incarnation */
	SA_READY,         /* readiness seen: running */
	SA_NOT_READY,     /* the readiness deadline passed */
	SA_EXITED,        /* the server died on its own */
	SA_TERM_RESTART,  /* TERM the group; respawn when it has gone */
	SA_RESPAWN,       /* the old incarnation has gone: start the next */
	SA_TERM_STOP,     /* TERM the group and every descendant; stop */
	SA_STOP_IDLE,     /* stop with no server running */
	SA_KILL,          /* grace over: KILL; then give up after FINAL_MS */
	SA_GONE           /* the server has gone during a stop */
};

/* The action of (state, event): the transition table, for tests too. */
enum srv_action srv_action_of(enum srv_state st, enum srv_event ev);
const char *srv_state_name(enum srv_state st);

struct sup;

/* Told once whether the incarnation started after srv_restart() (or the
 * first one) became ready: `ready` 1, or 0 with `why`. */
enum srv_verdict {
	SRV_V_POLICY = 0,   /* not ready: apply the restart policy */
	SRV_V_RESTART,      /* not ready: restart now (e.g. after a rollback) */
	SRV_V_SHUTDOWN      /* not ready: end supervision (exit status 1) */
};
typedef enum srv_verdict srv_outcome_fn(struct sup *s, int ready, const char *why);

/* Feed an event to the state machine; every change goes through here. */
void srv_event(struct sup *s, enum srv_event ev);
/* Restart the server gracefully (or start it when none runs), resetting
 * the backoff; `outcome` (may be NULL) hears how the new incarnation
 * does. */
void srv_restart(struct sup *s, const char *why, srv_outcome_fn *outcome);
/* The server is unhealthy (liveness, its watchdog): TERM its group and
 * KILL after the grace period, as a restart does, but its next start
 * goes through the restart policy (backoff) as after a failure. */
void srv_fail(struct sup *s, const char *why);
/* Set what hears how the next incarnation does (for SRV_V_RESTART). */
void srv_set_outcome(struct sup *s, srv_outcome_fn *outcome);
/* Begin the shutdown: exit status `code`, `why` for the log and state. */
void srv_shutdown(struct sup *s, int code, const char *why);
/* A descendant may have gone (SIGCHLD): finish a stop that waits. */
void srv_check_gone(struct sup *s);
/* Take over the server child `rec` after a self-refresh. */
int srv_adopt(struct sup *s, const struct pid_record *rec, int ready);

/* ---- readiness (sup_ready.c) ---- */

/* Before a spawn: the fd to hand over as APPD_NOTIFY_FD; -1 if none,
 * -2 on error (`e`). */
int ready_prepare(struct sup *s, struct err *e);
/* After a spawn, in `starting`: start watching for readiness (may feed
 * SEV_READY at once). */
void ready_start(struct sup *s);
/* Leaving `starting`, or a spawn failed: stop every probe and release
 * what ready_prepare made. */
void ready_end(struct sup *s);
/* The supervisor's run/ watch saw a change: while starting with
 * connect or codex-initialize readiness, probe now. */
void ready_dir_changed(struct sup *s);
/* The NOTIFY_SOCKET datagram socket (readiness notify only). */
int ready_open_notify_socket(struct sup *s, struct err *e);
/* The last failed probe, for "not ready" messages ("" if none). */
const char *ready_last_error(const struct sup *s);

/* ---- liveness (sup_live.c) ---- */

/* The server entered `running` (ready): arm the liveness probe when one
 * is configured.  Leaving `running`: disarm it. */
void live_start(struct sup *s);
void live_stop(struct sup *s);
/* The server sent WATCHDOG=1 on NOTIFY_SOCKET (server.watchdogSeconds). */
void live_watchdog_ping(struct sup *s);

/* ---- the update flow (sup_update.c) ---- */

void upd_flow_init(struct sup *s, int handover, int64_t now);
/* SIGUSR1: answer state/update-request.json. */
void upd_flow_request(struct sup *s);
/* Shutting down: cancel a check; put `current` back when the new
 * release was never seen ready; answer a waiting requester. */
void upd_flow_abandon(struct sup *s);
/* 1 while a check or an update is in flight. */
int upd_flow_busy(const struct sup *s);
/* After a self-refresh that did not happen: serve a queued request. */
void upd_flow_next(struct sup *s);
/* After each turn of the loop: unmap the flow's storage once no check,
 * switch, rollback or self-refresh is in flight. */
void upd_flow_idle(struct sup *s);

/* ---- self-refresh (sup_refresh.c) ---- */

/* Probe `path --version` on the reactor, then execve it in place. */
void refresh_start(struct sup *s, const char *path);
/* Shutting down: forget a probe in flight. */
void refresh_cancel(struct sup *s);
/* In the new image: take back the fds and the server child.  1 adopted,
 * 0 nothing to adopt, -1 error (`e`). */
int refresh_adopt(struct sup *s, const struct sup_opts *o, struct err *e);
/* The pid of the --version probe child (0: none), reaped by its owner. */
pid_t refresh_child(const struct sup *s);

/* ---- supervisor.c ---- */

/* Publish the state: status.json (unless another live supervisor owns
 * it) -- called by srv_enter and the update flow on every change. */
void sup_publish(struct sup *s);
/* A state file write failed (`msg` names the file and the cause): the
 * live record says so until a write succeeds again; logged too. */
void sup_state_write_failed(struct sup *s, const char *msg);
/* Stop watching run/ (socket repair, a removed socket).  Closing an
 * inotify instance waits for an RCU grace period (5-10 ms here), so a
 * stop does it right after TERM, while the server exits, rather than at
 * the supervisor's own exit, which `appd stop` waits for. */
void sup_unwatch_run(struct sup *s);
/* The end of supervision: clean up, publish "stopped", leave the loop. */
void sup_finish(struct sup *s);
void sup_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A cleared error record for a failure that is only logged, shared so
 * that such calls cost no 3 KB stack frame each.  Only for a call into
 * a function outside the supervisor whose error is read right after. */
struct err *sup_err(void);
/* Cancel the watch `*h` (if armed) and set it to -1. */
void sup_cancel(struct sup *s, int *h);
/* The probes' storage (mapped on first use); NULL/errno when it cannot
 * be mapped. */
struct sup_probes *sup_probes(struct sup *s);
/* 1 while a codex-initialize / an hprobe attempt runs. */
int sup_ws_running(const struct sup *s);
int sup_hp_running(const struct sup *s);
/* Stop whatever probe runs (no callback follows). */
void sup_probes_cancel(struct sup *s);
/* Uniform random milliseconds in [lo, hi]. */
int64_t sup_rand_ms(int64_t lo, int64_t hi);

/* The probes' contexts (170 KB, mostly buffers): mapped when a probe
 * starts, returned to the kernel after the turn in which none runs any
 * more, so a supervisor keeps them only while it probes. */
struct sup_probes {
	struct wsprobe ws;            /* codex-initialize */
	struct hprobe hp;             /* tcp/http/http+unix/exec */
};

/*
 * What only an update flow needs, from the start of a check to its
 * verdict (and the restart onto the new release, and a rollback): mapped
 * by upd_start and returned to the kernel by upd_flow_idle once nothing
 * runs, so an idle supervisor keeps none of it between its checks (the
 * check's context alone -- trust anchors, the TLS fetch, the manifest --
 * is some 380 KB).
 */
struct upd_flow {
	struct updater upd;
	struct settings ns;           /* the settings as the check found them */
	struct pkgdir pk;
	struct upd_result res;        /* what the check installed */
	char back[UPD_RELEASE_MAX];   /* `current` before the switch */
	char back_prev[UPD_RELEASE_MAX];
	char prev_version[MANIFEST_VERSION_MAX];
	char rb_msg[768];             /* the rollback's message */
	struct err err;               /* the flow's steps' (not a stack frame) */
};

/* Ordered hot to cold: what an idle supervisor touches comes first, what
 * only an update or a self-refresh needs comes last (untouched pages of
 * this static struct cost no memory). */
struct sup {
	struct reactor r;
	const struct home *h;
	enum srv_state state;
	pid_t srv;                    /* 0: no server process */
	int srv_h;                    /* its exit watch */
	int srv_exit_status;          /* of the last exit, for SEV_EXIT */
	int srv_timer_h;              /* the state's timer */
	int srv_pub_h;                /* stopping: publish only if it lasts */
	int forced;                   /* KILL sent in this stop or restart */
	int no_subreaper;             /* orphans go to init: stop walks the tree */
	int respawn_failed;           /* the restart follows a failure */
	int64_t started_ms;           /* the last spawn attempt (monotonic) */
	int64_t interval_ms;          /* minimum start-to-start interval */
	srv_outcome_fn *outcome_next; /* hears about the next incarnation */
	srv_outcome_fn *outcome;      /* hears about this one */
	enum err_code fail_code;      /* what the last failure was, for the outcome */
	int out_rd, out_wr, out_h;    /* the server's stdout+stderr pipe */
	int ready_fd;                 /* the launching `start` waits on it */
	int ready_timeout_s;
	int grace_s;
	int own_status;               /* 0 once another supervisor owns status.json */
	int pidfile_behind;           /* this incarnation's app-server.pid could
	                               * not be written (st.state_write_error) */
	int finished;
	int exit_code;
	int foreground;               /* `appd run` (sup_opts.foreground) */
	struct mgr mgr;               /* its service manager */
	int wd_h;                     /* the manager's watchdog timer */
	int lfd;                      /* socket activation: the held listener */
	int activation_h;             /* its path repair: a watch on run/ */
	int activation_wd;
	/* readiness */
	int probe_h, probe_ms, probe_fast;
	char probe_err[256];          /* the last failed probe ("" if none) */
	struct sup_probes *pr;        /* mapped while a probe runs, else NULL */
	int trim;                     /* release idle storage and the stack
	                               * after this turn (sup_trim) */
	/* liveness (sup_live.c) */
	int live_h;                   /* the next probe, or its kill deadline */
	int live_running;             /* an attempt is out */
	int wdog_h;                   /* the server's watchdog deadline */
	int notify_rd, notify_wr, notify_h;
	int nsock, nsock_h;
	/* update flow: the schedule */
	struct upd_flow *fl;          /* mapped while a flow runs, else NULL */
	int upd_h;                    /* the next scheduled check */
	int upd_phase;                /* UPH_* */
	int upd_lock;                 /* daemon.lock from switch to verdict */
	struct pid_record srv_rec;
	struct pid_record self;
	struct sup_status st;         /* what is published */
	struct ctl ctl;
	struct logcap log;
	struct settings s;            /* its string store is at its end */

	/* ---- only with a readiness or liveness probe configured ---- */
	struct hprobe_spec hps;       /* readiness */
	struct hprobe_spec lps;       /* liveness */

	/* ---- cold: only a check, an update or a self-refresh ---- */
	char upd_req[64];             /* the request being answered, "" if scheduled */
	char pend_req[64];            /* one that came in while busy */
	int pend, pend_check;
	long req_locker, pend_locker;
	uint64_t pend_fetch_ms;
	unsigned char self_sha[32];
	int has_self_sha;
	struct childrun vfy;          /* the new appd's --version */
	char vfy_out[64];
	char vfy_path[HOME_PATH_MAX];
};

enum { UPH_NONE = 0, UPH_VERIFYING, UPH_ROLLBACK };

#define SUP_BACKOFF_MIN_MS 1000
#define SUP_BACKOFF_MAX_MS 60000
#define SUP_HEALTHY_MS 60000

#endif
