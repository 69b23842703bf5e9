/*
 * lifecycle.h -- the client half of the lifecycle, shared by start, stop,
 * restart, status, bootstrap, update and the remote-control commands:
 * launching the supervisor under the seed's pidfile reservation and
 * reading its ready line (supervisor.h), asking it for its live state
 * (control.h), waiting for readiness, stopping the tree, and killing what a
 * dead supervisor left behind -- always by identity (pidfile.h).  Every
 * wait is an event with a deadline on a private reactor; nothing here
 * prints (cmd/ does).  Callers hold state/daemon.lock where DESIGN.md
 * "Locks" says so.
 */
#ifndef APPD_LIFECYCLE_H
#define APPD_LIFECYCLE_H

#include "core/base/err.h"
#include "core/home.h"
#include "core/pidfile.h"
#include "core/settings.h"
#include "core/status.h"

struct start_result {
	int started;            /* 1 launched now, 0 already running */
	int replaced_stale;     /* a supervisor that did not answer was stopped first */
	long server_pid;
	long sup_pid;
};

/* Idempotent start: wait for a running supervisor's server to be ready,
 * or kill an orphaned tree and launch a supervisor, waiting `timeout_s`
 * for its readiness report.  A supervisor that is alive but does not
 * answer on its control socket within 1 s (SIGSTOPped, hung) is stale: it
 * is stopped (escalating to KILL) and replaced.  A failure (ERR_EXITED, ERR_NOT_READY,
 * ERR_SPAWN...) leaves nothing running; `e` gets the log tail. */
int lc_start(const struct home *h, const struct settings *s, int timeout_s,
	     struct start_result *res, struct err *e);

/* Stop the supervisor and the server tree: TERM, then KILL after the
 * grace period and a margin for a hung supervisor.  `*stopped` 1 when
 * something was stopped.  With `explicit_grace` the supervisor is told
 * `grace_s` (a stop request file); otherwise it uses its settings'. */
int lc_stop(const struct home *h, int grace_s, int explicit_grace, int *stopped, struct err *e);

/* The supervisor's record: 1 when an active supervisor exists (`rec`
 * filled), 0 when none, -1 on error.  A reservation in flight is waited
 * for (bounded). */
int lc_supervisor(const struct home *h, struct pid_record *rec, struct err *e);

/* Ask the supervisor `sup` for its live record within CTL_TIMEOUT_MS.
 * 1 answered by that supervisor (`st` filled), 0 no answer (hung,
 * stopped, or not yet listening), -1 error. */
int lc_live(const struct home *h, const struct pid_record *sup, struct sup_status *st);

/* Kill a server left behind by a dead supervisor, by identity: TERM to
 * its group, KILL after `grace_s`.  `*killed` 1 when there was one. */
int lc_kill_orphan(const struct home *h, int grace_s, int *killed, struct err *e);

/* Wait until check(arg) is true: it runs now, then whenever an entry of
 * `dir` appears, moves in or goes (dirwatch), until the supervisor `sup`
 * exits or `timeout_ms` passes.  1 done, 0 timed out, -2 the supervisor
 * went first, -1 error (`e`). */
int lc_wait_dir(const char *dir, const struct pid_record *sup, int timeout_ms,
		int (*check)(void *arg), void *arg, struct err *e);

/* Wait until the running supervisor reports the server ready in an
 * incarnation after `after_incarnation` (0: any), from its live records
 * (the control socket's watch) or, without them, status.json.
 * ERR_NOT_READY with the log tail when it does not within `timeout_ms`
 * or the supervisor stops; ERR_EXITED when the new incarnation exits
 * first; ERR_SPAWN at once when the supervisor's count of failed server
 * starts rises above `after_failures` (-1: not watched). */
int lc_wait_ready(const struct home *h, const struct pid_record *sup, int after_incarnation,
		  int after_failures, int timeout_ms, struct sup_status *st, struct err *e);

/* Restart in place: SIGHUP to `sup` (it re-reads settings and restarts
 * the server, socket kept), then wait for the next incarnation to be
 * ready within grace + timeout.  `st` gets the record. */
int lc_restart_in_place(const struct home *h, const struct pid_record *sup, int grace_s,
			int timeout_s, struct sup_status *st, struct err *e);

/*
 * Hand an update check to the supervisor `sup`: write
 * state/update-request.json, SIGUSR1, then wait (lc_wait_dir on
 * packages/, the supervisor's exit, a deadline of `timeout_s`) for
 * packages/updater.json to carry our request id; `st` gets it.  `locked`:
 * the caller holds daemon.lock (the supervisor then does not take it).
 * ERR_NOT_RUNNING when the supervisor exits first, ERR_OTHER on no answer.
 */
struct pkgdir;
struct upd_state;
int lc_update_request(const struct home *h, const struct pkgdir *pk, const struct pid_record *sup,
		      int check, int fetch_timeout_s, int timeout_s, int locked,
		      struct upd_state *st, struct err *e);

/* 1 when a server answers on the socket but appd does not manage it (no
 * live supervisor and no record of ours), 0 when not, -1 on error. */
int lc_unmanaged(const struct home *h, struct err *e);

/*
 * Stop the unmanaged server `u` (core/unmanaged.h) listening on
 * h->socket: only a process of this user (uid), identified again just
 * before it is signalled (the same pid and start time must still be the
 * listener: a pid is reused, that pair is not), and only that process,
 * never its process group (it is not ours: a shell may share it).  TERM
 * and CONT, KILL after `grace_s` s, then at most 5 s more.  0 when it is
 * gone (*killed 1 when KILL was needed); -1 with ERR_UNMANAGED when it
 * belongs to another user, the OS does not say which process listens, or
 * the listener changed (nothing is signalled then), ERR_STOP_TIMEOUT when
 * even KILL did not end it.
 */
struct unmanaged;
int lc_stop_unmanaged(const struct home *h, const struct unmanaged *u, int grace_s,
		      int *killed, struct err *e);

/*
 * What `status` reports, judged once here (a supervisor record of another
 * machine sharing the home: "otherHost", v->foreign, nothing judged):
 *   state  "starting"  a supervisor reservation is in flight, or the
 *                      supervisor runs but has neither answered nor
 *                      published yet;
 *          "stopped"   no supervisor, no server;
 *          "orphaned"  no supervisor, but its server still runs;
 *          "stale"     the supervisor lives but does not answer within
 *                      1 s (hung, SIGSTOPped): st is its last file;
 *          otherwise   the live state the supervisor answered.
 */
struct lc_view {
	const char *state;
	int sup_recorded;        /* supervisor.pid holds a record */
	int sup_active;
	struct pid_record sup;
	int srv_active;
	struct pid_record srv;
	int have_st;             /* st belongs to the running supervisor */
	int fresh;               /* ... and came live from its control socket */
	int foreign;             /* supervisor.pid is another machine's record */
	struct sup_status st;
};
int lc_view(const struct home *h, struct lc_view *v, struct err *e);

/* The records other hosts sharing the home published (their status.json:
 * the owner's state/ when this host is not the owner, and every other
 * hosts/<machine id>/state/), at most `cap` into `out`.  Their count.
 * Nothing is judged: a process on another host cannot be checked here. */
int lc_other_hosts(const struct home *h, struct sup_status *out, int cap);

#endif
