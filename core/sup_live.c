/*
 * sup_live.c -- the liveness probe (DESIGN.md "Readiness and liveness";
 * the rules of Kubernetes' livenessProbe and Docker's HEALTHCHECK): while
 * the server is running and ready, one probe every intervalSeconds, each
 * bounded by timeoutSeconds; failureThreshold consecutive failures and
 * the server is taken down by its lifecycle (srv_fail: TERM and CONT to
 * its process group, so a SIGSTOPped server wakes to die, KILL after the
 * grace period) and started again through the restart policy, backoff
 * included.
 * Probes: connect (the control socket), codex-initialize (a WebSocket
 * initialize session) or any core/hprobe.h spec.  Nothing is armed when
 * no probe is configured: no wakeup.  status shows health {lastProbeAt,
 * lastResult, consecutiveFailures, restarts}.
 *
 * The server's own watchdog (server.watchdogSeconds, systemd's protocol,
 * sd_watchdog_enabled(3)): the server gets NOTIFY_SOCKET, WATCHDOG_USEC
 * and WATCHDOG_PID, and once it is running it must send WATCHDOG=1 at
 * least every watchdogSeconds; a missed deadline takes it down the same
 * way.
 */
#include "core/sup.h"
#include "core/base/fsutil.h"
#include "core/net/wsprobe.h"
#include "core/sockprep.h"
#include "core/version.h"
#include "platform/reactor.h"

#include <string.h>

static void on_live_timer(struct reactor *r, int h, int ev, void *arg);
static void take_down(struct sup *s);

static void
arm(struct sup *s, uint64_t ms)
{
	sup_cancel(s, &s->live_h);
	s->live_h = reactor_timer_add(&s->r, ms, on_live_timer, s);
}

static void
on_wdog(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->wdog_h = -1;
	if (s->state != SRV_RUNNING)
		return;
	str_fmt(s->st.health_why, sizeof s->st.health_why, "no WATCHDOG=1 from the server "
	    "within %d s", s->s.live.watchdog_s);
	s->st.health_ok = 0;
	s->st.health_last_at = wall_ms();
	take_down(s);
}

static void
wdog_arm(struct sup *s)
{
	sup_cancel(s, &s->wdog_h);
	s->wdog_h = reactor_timer_add(&s->r, (uint64_t)s->s.live.watchdog_s * 1000, on_wdog, s);
}

void
live_watchdog_ping(struct sup *s)
{
	if (s->state == SRV_RUNNING && s->s.live.watchdog_s > 0)
		wdog_arm(s);
}

void
live_stop(struct sup *s)
{
	sup_cancel(s, &s->wdog_h);
	sup_cancel(s, &s->live_h);
	if (s->live_running) {
		sup_probes_cancel(s);
		s->live_running = 0;
	}
}

void
live_start(struct sup *s)
{
	struct err *e = sup_err();

	s->st.health_enabled = s->s.live.enabled || s->s.live.watchdog_s > 0;
	s->st.health_failures = 0;
	if (s->s.live.watchdog_s > 0)
		wdog_arm(s);
	if (!s->s.live.enabled)
		return;
	if (hprobe_is_spec(settings_str(&s->s, s->s.live.probe))) {
		if (hprobe_parse(settings_str(&s->s, s->s.live.probe), s->h->socket, &s->lps, e) < 0) {
			sup_log("liveness probe not armed: %s", e->msg);
			return;
		}
	}
	arm(s, (uint64_t)s->s.live.interval_s * 1000);
}

/* The threshold was hit: take the server down (see above) through the
 * server's lifecycle, which leaves `running` (and so stops the probes). */
static void
take_down(struct sup *s)
{
	char why[sizeof s->st.message];

	s->st.health_restarts++;
	str_fmt(why, sizeof why, "unhealthy: %s", s->st.health_why);
	srv_fail(s, why);
}

static void
result(struct sup *s, int ok, const char *why)
{
	int changed;

	s->live_running = 0;
	if (s->state != SRV_RUNNING)
		return;
	changed = s->st.health_last_at == 0 || s->st.health_ok != ok;
	s->st.health_last_at = wall_ms();
	s->st.health_ok = ok;
	if (ok) {
		s->st.health_failures = 0;
		s->st.health_why[0] = '\0';
	} else {
		s->st.health_failures++;
		str_copy(s->st.health_why, sizeof s->st.health_why, why);
		sup_log("liveness probe failed (%d of %d): %s", s->st.health_failures,
		    s->s.live.threshold, why);
	}
	if (!ok && s->st.health_failures >= s->s.live.threshold) {
		take_down(s);
		return;
	}
	/* a change is published, and every failure; a steady "ok" is not
	 * (no file write per probe: the live answer has it) */
	if (!ok || changed)
		sup_publish(s);
	arm(s, (uint64_t)s->s.live.interval_s * 1000);
}

static void
on_hp(struct hprobe *p, void *arg)
{
	struct sup *s = arg;

	result(s, p->ok, p->why);
}

static void
on_ws(struct wsprobe *p, void *arg)
{
	struct sup *s = arg;

	result(s, p->ok, p->err.msg);
}

static void
on_live_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	uint64_t tmo = (uint64_t)s->s.live.timeout_s * 1000;
	struct err *e = sup_err();
	struct sup_probes *pr;
	char why[sizeof e->msg];

	(void)r; (void)h; (void)ev;
	s->live_h = -1;
	if (s->state != SRV_RUNNING)
		return;
	s->live_running = 1;
	if (strcmp(settings_str(&s->s, s->s.live.probe), "connect") == 0) {
		int ok = sock_probe(s->h->socket) == 1;
		result(s, ok, ok ? NULL : "the control socket refused the connection");
		return;
	}
	if ((pr = sup_probes(s)) == NULL) {
		result(s, 0, "no memory for the liveness probe");
		return;
	}
	if (strcmp(settings_str(&s->s, s->s.live.probe), "codex-initialize") == 0) {
		if (wsprobe_start(&pr->ws, &s->r, s->h->socket, APPD_VERSION, tmo, on_ws, s) < 0)
			result(s, 0, pr->ws.err.msg);
		return;
	}
	if (hprobe_start(&pr->hp, &s->r, &s->lps, tmo, on_hp, s, e) < 0) {
		/* result() publishes, which reuses sup_err()'s record */
		str_copy(why, sizeof why, e->msg);
		result(s, 0, why);
	}
}
