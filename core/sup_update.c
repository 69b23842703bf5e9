/*
 * sup_update.c -- the update flow inside the supervisor (DESIGN.md
 * "Updater"): the schedule (one timer), a check on the reactor
 * (core/update/updater.h), the switch of `current`, and the verdict.
 *
 * It talks to the server's lifecycle only through srv_restart(): "restart
 * onto the release `current` now names, then tell me ready or not".  Not
 * ready: switch back, restart the previous release, and publish the
 * rejection once that one is ready again (or failed too), so whoever
 * asked finds the server back when the answer comes.
 *
 * Schedule: the first check 1..5 min after start; then the interval plus
 * up to 20 %; failures back off with full jitter from 1 min doubling to
 * 6 h; a Retry-After pushes the next check further (at most 24 h).
 */
#include "core/sup.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/lock.h"
#include "core/update/sig.h"
#include "platform/compat.h"
#include "platform/proc.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define UPD_FIRST_MIN_MS   60000LL          /* first check 1..5 min after start */
#define UPD_FIRST_MAX_MS   300000LL
#define UPD_FAIL_BASE_MS   60000LL          /* failures: full jitter up to base*2^n */
#define UPD_FAIL_MIN_MS    15000LL
#define UPD_FAIL_CAP_MS    (6LL * 3600 * 1000)
#define UPD_BUSY_MS        30000LL          /* daemon.lock held: retry */
#define UPD_RETRY_CAP_MS   (24LL * 3600 * 1000)

static void upd_start(struct sup *s, const char *req, int check_only, uint64_t fetch_ms,
		      long locker);

static int
stopping(const struct sup *s)
{
	return s->state == SRV_STOPPING || s->finished;
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

static void
schedule(struct sup *s, int64_t delay_ms)
{
	sup_cancel(s, &s->upd_h);
	s->st.next_check_at = 0;
	if (!s->s.upd.enabled || !s->s.upd.has_url || stopping(s))
		return;
	s->upd_h = reactor_timer_add(&s->r, (uint64_t)delay_ms, on_upd_timer, s);
	if (s->upd_h >= 0)
		s->st.next_check_at = wall_ms() + delay_ms;
}

/* After a check that went well (ok) or failed: see the header comment. */
static void
schedule_after(struct sup *s, int ok, long long retry_after_s)
{
	int64_t d;

	if (ok) {
		int64_t iv = (int64_t)s->s.upd.interval_min * 60000;
		d = iv + sup_rand_ms(0, iv / 5);
	} else {
		int n = s->fl->upd.st.failures > 20 ? 20 : s->fl->upd.st.failures;
		int64_t cap = UPD_FAIL_BASE_MS << (n > 0 ? n - 1 : 0);
		if (cap > UPD_FAIL_CAP_MS)
			cap = UPD_FAIL_CAP_MS;
		d = sup_rand_ms(UPD_FAIL_MIN_MS, cap);
	}
	if (retry_after_s > 0 && retry_after_s * 1000 > d)
		d = retry_after_s * 1000 > UPD_RETRY_CAP_MS ? UPD_RETRY_CAP_MS : retry_after_s * 1000;
	schedule(s, d);
}

/* What follows a verdict: the next check after a good one, after a
 * failure (backoff), after daemon.lock was busy, or none (stopping). */
enum next { NEXT_OK, NEXT_FAIL, NEXT_BUSY, NEXT_NONE };

/*
 * The verdict, recorded once (updstate_record), the next check scheduled,
 * then made visible: status.json first (the new schedule, no check
 * running), then packages/updater.json with the answered request id --
 * whoever sees the answer there finds the new schedule in `status`.
 */
static void
verdict(struct sup *s, enum upd_kind kind, const char *reason, const char *version,
    const char *msg, enum next next, long long retry_after)
{
	struct upd_state *st;
	struct err *e;

	if (s->fl == NULL)
		return;         /* never: every verdict ends a flow that is mapped */
	st = &s->fl->upd.st;
	updstate_record(st, kind, reason, version, msg);
	if (next == NEXT_BUSY)
		schedule(s, UPD_BUSY_MS);
	else if (next != NEXT_NONE)
		schedule_after(s, next == NEXT_OK, retry_after);
	str_copy(st->request_id, sizeof st->request_id, s->upd_req);
	st->next_check_at = s->st.next_check_at;
	s->st.checking = 0;
	sup_publish(s);
	e = sup_err();
	if (updstate_write(s->fl->pk.state, st, e) < 0)
		sup_log("%s", e->msg);
	sup_log("update check: %s%s%s%s: %s", upd_kind_name(kind), reason && reason[0] ? " (" : "",
	    reason ? reason : "", reason && reason[0] ? ")" : "", msg ? msg : "");
	s->upd_req[0] = '\0';
	if (s->upd_lock >= 0)
		close(s->upd_lock);
	s->upd_lock = -1;
}

void
upd_flow_next(struct sup *s)
{
	if (s->pend && !stopping(s) && !upd_flow_busy(s)) {
		s->pend = 0;
		upd_start(s, s->pend_req, s->pend_check, s->pend_fetch_ms, s->pend_locker);
	}
}

int
upd_flow_busy(const struct sup *s)
{
	return (s->fl != NULL && updater_running(&s->fl->upd)) || s->upd_phase != UPH_NONE ||
	    refresh_child(s) > 0;
}

static void
prune(struct sup *s, const char *keep_appd)
{
	char self[PATH_MAX];
	struct err *e = sup_err();

	if (!keep_appd || !keep_appd[0])
		keep_appd = proc_self_exe(self, sizeof self) == 0 ? self : NULL;
	if (install_prune(&s->fl->pk, keep_appd, e) < 0)
		sup_log("pruning old releases: %s", e->msg);
}

/* The request came from a command that holds daemon.lock itself (a
 * rerun of `bootstrap`): the lock is held and its note names that pid. */
static int
requester_holds_lock(struct sup *s)
{
	struct lock_holder lh;

	return s->req_locker > 0 && lock_is_held(s->h->daemon_lock) == 1 &&
	    lock_read_holder(s->h->daemon_lock, &lh) == 0 && lh.pid == s->req_locker;
}

/* ---- verification through the server's lifecycle ---- */

/* The release rolled back to is ready again, or failed too. */
static enum srv_verdict
rollback_outcome(struct sup *s, int ready, const char *why)
{
	char msg[1024];

	s->upd_phase = UPH_NONE;
	str_fmt(msg, sizeof msg, "%s%s%s", s->fl->rb_msg, ready ? "" : "; the previous release failed too: ",
	    ready ? "" : why);
	verdict(s, UPD_REJECTED, "notReady", s->fl->res.version, msg, NEXT_OK, -1);
	upd_flow_next(s);
	return SRV_V_POLICY;
}

/* The new release: ready is "updated"; not ready rolls back. */
static enum srv_verdict
verify_outcome(struct sup *s, int ready, const char *why)
{
	struct upd_state *st = &s->fl->upd.st;
	struct err *e = &s->fl->err;
	char msg[256];

	updater_accept(&s->fl->upd);
	if (ready) {
		s->upd_phase = UPH_NONE;
		str_copy(st->previous_version, sizeof st->previous_version, s->fl->prev_version);
		st->last_pid = (long)s->srv;
		str_fmt(msg, sizeof msg, "updated to %s; server pid %ld is ready", s->fl->res.version,
		    (long)s->srv);
		verdict(s, UPD_INSTALLED, NULL, s->fl->res.version, msg, NEXT_OK, -1);
		prune(s, s->fl->res.appd_path);
		if (s->fl->res.appd_path[0])
			refresh_start(s, s->fl->res.appd_path);
		else
			upd_flow_next(s);
		return SRV_V_POLICY;
	}
	err_clear(e);
	if (s->fl->back[0] && install_switch_back(&s->fl->pk, s->fl->back, s->fl->back_prev, e) < 0)
		sup_log("rolling back: %s", e->msg);
	updstate_add_rejected(st, s->fl->res.version);
	st->previous_version[0] = '\0';
	st->last_pid = 0;
	str_fmt(s->fl->rb_msg, sizeof s->fl->rb_msg, "version %s was not ready (%s); rolled back to %s",
	    s->fl->res.version, why, s->fl->back[0] ? s->fl->back : "nothing");
	sup_log("%s", s->fl->rb_msg);
	prune(s, NULL);
	if (s->upd_lock >= 0)
		close(s->upd_lock);
	s->upd_lock = -1;
	s->upd_phase = UPH_ROLLBACK;
	s->st.checking = 1;
	srv_set_outcome(s, rollback_outcome);
	return SRV_V_RESTART;
}

/* A new release is installed: switch `current` and restart the server
 * onto it; the verdict comes from verify_outcome. */
static void
apply(struct sup *s, const struct upd_result *res)
{
	struct err *e = &s->fl->err;
	char msg[512];

	s->fl->res = *res;
	err_clear(e);
	if (res->release[0] == '\0') {
		/* only appd itself is new */
		updater_accept(&s->fl->upd);
		verdict(s, UPD_INSTALLED, NULL, res->version, "installed a new appd; re-executing it",
		    NEXT_OK, -1);
		prune(s, res->appd_path);
		refresh_start(s, res->appd_path);
		return;
	}
	if (requester_holds_lock(s)) {
		s->upd_lock = -1;       /* `bootstrap` holds it for us */
	} else if ((s->upd_lock = lock_acquire(s->h->daemon_lock, 0)) < 0) {
		verdict(s, UPD_REJECTED, "busy", res->version,
		    "another lifecycle command holds daemon.lock; the update is retried later",
		    NEXT_BUSY, -1);
		upd_flow_next(s);
		return;
	}
	if (s->upd_lock >= 0)
		(void)lock_note_holder(s->upd_lock, "update");
	if (install_link_read(s->fl->pk.current, s->fl->back, sizeof s->fl->back, e) != 0)
		s->fl->back[0] = '\0';
	err_clear(e);
	if (install_link_read(s->fl->pk.previous, s->fl->back_prev, sizeof s->fl->back_prev, e) != 0)
		s->fl->back_prev[0] = '\0';
	str_copy(s->fl->prev_version, sizeof s->fl->prev_version, res->installed);
	err_clear(e);
	if (install_switch(&s->fl->pk, res->release, e) < 0) {
		verdict(s, UPD_REJECTED, "io", res->version, e->msg, NEXT_FAIL, -1);
		upd_flow_next(s);
		return;
	}
	str_fmt(msg, sizeof msg, "updating to %s", res->version);
	sup_log("%s: switched %s to %s", msg, s->fl->pk.current, res->release);
	s->upd_phase = UPH_VERIFYING;
	srv_restart(s, msg, verify_outcome);
}

static void
on_check_done(struct updater *u, const struct upd_result *res, void *arg)
{
	struct sup *s = arg;

	if (res->kind == UPD_INSTALLED) {
		apply(s, res);
		return;
	}
	if (res->kind == UPD_NO_UPDATE)
		updater_accept(u);
	verdict(s, res->kind, res->kind == UPD_REJECTED ? res->reason : NULL, res->version,
	    res->err.msg, res->kind == UPD_REJECTED ? NEXT_FAIL : NEXT_OK, res->retry_after);
	upd_flow_next(s);
}

/* The flow's storage (see sup.h); 0, or -1/errno. */
static int
flow_map(struct sup *s, struct err *e)
{
	if (s->fl != NULL)
		return 0;
	if ((s->fl = compat_map(sizeof *s->fl)) == NULL)
		return err_sys(e, ERR_IO, "no memory for an update check");
	if (install_paths(&s->fl->pk, s->h->packages, e) < 0) {
		compat_unmap(s->fl, sizeof *s->fl);
		s->fl = NULL;
		return -1;
	}
	return 0;
}

void
upd_flow_idle(struct sup *s)
{
	if (s->fl == NULL || upd_flow_busy(s) || s->pend)
		return;
	compat_unmap(s->fl, sizeof *s->fl);
	s->fl = NULL;
	s->trim = 1;            /* and the stack the check used */
}

/* The settings as the file says now, for the check (a check follows
 * what `bootstrap` or `appd set` saved since the start); the schedule's
 * members of the resident copy follow them too. */
static void
reread_settings(struct sup *s)
{
	struct err *e = sup_err();

	if (settings_load(s->h->settings, &s->fl->ns, e) == 0) {
		s->s.upd.enabled = s->fl->ns.upd.enabled;
		s->s.upd.has_url = s->fl->ns.upd.has_url;
		s->s.upd.interval_min = s->fl->ns.upd.interval_min;
	} else {
		sup_log("update check: using the settings read at start: %s", e->msg);
		settings_assign(&s->fl->ns, &s->s);
	}
}

static void
upd_start(struct sup *s, const char *req, int check_only, uint64_t fetch_ms, long locker)
{
	struct upd_opts o;
	struct err *e = sup_err();
	char mid[HOME_PATH_MAX + 16];

	if (stopping(s))
		return;
	if (upd_flow_busy(s)) {
		str_copy(s->pend_req, sizeof s->pend_req, req);
		s->pend = 1;
		s->pend_check = check_only;
		s->pend_fetch_ms = fetch_ms;
		s->pend_locker = locker;
		return;
	}
	if (flow_map(s, e) < 0) {
		/* nothing to record the verdict in: try again later */
		sup_log("update check: %s", e->msg);
		schedule(s, UPD_BUSY_MS);
		return;
	}
	s->req_locker = locker;
	sup_cancel(s, &s->upd_h);
	reread_settings(s);
	str_copy(s->upd_req, sizeof s->upd_req, req);
	memset(&o, 0, sizeof o);
	str_fmt(mid, sizeof mid, "%s/machine-id", s->h->state);
	o.settings = &s->fl->ns;
	o.pk = &s->fl->pk;
	o.check_only = check_only;
	o.fetch_timeout_ms = fetch_ms;
	o.machine_id_fallback = mid;
	if (!s->has_self_sha) {
		/* our own digest, to tell a new appd artifact from this one:
		 * computed at the first check, not on the idle path */
		char self[PATH_MAX];
		s->has_self_sha = proc_self_exe(self, sizeof self) == 0 &&
		    sig_file_sha256(self, s->self_sha, NULL) == 0;
	}
	o.self_sha256 = s->has_self_sha ? s->self_sha : NULL;
	e = sup_err();
	if (updater_start(&s->fl->upd, &s->r, &o, on_check_done, s, e) < 0) {
		char why[sizeof e->msg];
		enum err_code code = e->code;

		/* verdict() publishes, which reuses sup_err()'s record */
		str_copy(why, sizeof why, e->msg);
		(void)updstate_read(s->fl->pk.state, &s->fl->upd.st, sup_err());
		verdict(s, UPD_REJECTED, code == ERR_USAGE ? "notConfigured" : "io", "", why,
		    NEXT_FAIL, -1);
		return;
	}
	s->st.checking = 1;
	sup_publish(s);
}

void
upd_flow_request(struct sup *s)
{
	char path[HOME_PATH_MAX + 32], buf[512], id[64] = "";
	jsmntok_t tok[16];
	struct jsonr r;
	long long v;
	size_t len;
	int check = 0;
	uint64_t fetch_ms = 0;
	long locker = 0;

	if (stopping(s))
		return;
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
	sup_log("SIGUSR1: update check%s%s", id[0] ? " for request " : "", id);
	upd_start(s, id, check, fetch_ms, locker);
}

void
upd_flow_abandon(struct sup *s)
{

	sup_cancel(s, &s->upd_h);
	if (s->fl != NULL)
		updater_cancel(&s->fl->upd);
	s->st.next_check_at = 0;
	switch (s->upd_phase) {
	case UPH_ROLLBACK:
		s->upd_phase = UPH_NONE;
		verdict(s, UPD_REJECTED, "notReady", s->fl->res.version, s->fl->rb_msg, NEXT_NONE, -1);
		break;
	case UPH_VERIFYING:
		/* the new release was never seen ready: `current` goes back
		 * (the next check installs it again) */
		s->upd_phase = UPH_NONE;
		err_clear(&s->fl->err);
		if (s->fl->back[0] && install_switch_back(&s->fl->pk, s->fl->back, s->fl->back_prev,
		    &s->fl->err) < 0)
			sup_log("abandoning the update: %s", s->fl->err.msg);
		verdict(s, UPD_REJECTED, "stopped", s->fl->res.version,
		    "the supervisor stopped before the new release was ready; kept the previous one",
		    NEXT_NONE, -1);
		break;
	case UPH_NONE:
		if (s->upd_req[0])
			verdict(s, UPD_REJECTED, "stopped", "", "the supervisor stopped during the check",
			    NEXT_NONE, -1);
		break;
	}
	s->st.checking = 0;
	if (s->upd_lock >= 0)
		close(s->upd_lock);
	s->upd_lock = -1;
}

void
upd_flow_init(struct sup *s, int handover, int64_t now)
{
	if (handover && s->st.next_check_at > now)
		schedule(s, s->st.next_check_at - now);
	else
		schedule(s, sup_rand_ms(UPD_FIRST_MIN_MS, UPD_FIRST_MAX_MS));
}
