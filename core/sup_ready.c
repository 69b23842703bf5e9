/*
 * sup_ready.c -- deciding that the server is ready (DESIGN.md "Readiness
 * and liveness"); each mechanism feeds SEV_READY to the state machine.
 *
 *   connect           a connect(2) to the control socket succeeds.  Probed
 *                     when an entry appears in run/ (inotify / EVFILT_VNODE)
 *                     and on a timer backing off 1..100 ms.  The watch
 *                     fires at bind(2), before listen(2): a refused probe
 *                     right after an event is retried on the next turns
 *                     of the loop (PROBE_FAST times) before the timer.
 *   notify            a newline on the APPD_NOTIFY_FD pipe (s6's
 *                     notification-fd), or READY=1 on NOTIFY_SOCKET
 *                     (sd_notify(3)); both are offered at once.
 *   codex-initialize  a WebSocket initialize session over the socket
 *                     (core/net/wsprobe.h); the reply's version is kept.
 *   none              ready at once (and `connect` under socket
 *                     activation: the held listener queues connections).
 *   probe             a core/hprobe.h attempt (tcp://, http://,
 *                     http+unix://, exec:) succeeds; attempts at most 2 s
 *                     each, retried on the same backoff timer until the
 *                     ready timeout, the last failure kept for the error.
 */
#include "core/sup.h"
#include "core/base/fsutil.h"
#include "core/net/wsprobe.h"
#include "core/sockprep.h"
#include "core/version.h"
#include "platform/compat.h"
#include "platform/dirwatch.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PROBE_MIN_MS 1
#define PROBE_MAX_MS 100
#define PROBE_FAST 8            /* immediate retries after a run/ event */

static void on_probe(struct reactor *r, int h, int ev, void *arg);

static void
probe_at(struct sup *s, uint64_t ms)
{
	sup_cancel(s, &s->probe_h);
	s->probe_h = reactor_timer_add(&s->r, ms, on_probe, s);
}

static void
probe_later(struct sup *s)
{
	if (s->probe_fast > 0) {
		s->probe_fast--;
		probe_at(s, 0);
		return;
	}
	probe_at(s, (uint64_t)s->probe_ms);
	s->probe_ms = s->probe_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : s->probe_ms * 2;
}

static void
on_ws_done(struct wsprobe *p, void *arg)
{
	struct sup *s = arg;

	if (s->state != SRV_STARTING)
		return;
	if (p->ok) {
		str_copy(s->st.app_server_version, sizeof s->st.app_server_version, p->version);
		srv_event(s, SEV_READY);
		return;
	}
	str_copy(s->probe_err, sizeof s->probe_err, p->err.msg);
	if (s->probe_h < 0)
		probe_later(s);
}

static void
on_hp_done(struct hprobe *p, void *arg)
{
	struct sup *s = arg;

	if (s->state != SRV_STARTING)
		return;
	if (p->ok) {
		srv_event(s, SEV_READY);
		return;
	}
	str_fmt(s->probe_err, sizeof s->probe_err, "%s: %s", settings_str(&s->s, s->s.ready_spec), p->why);
	if (s->probe_h < 0)
		probe_later(s);
}

static void
on_probe(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;

	(void)r; (void)h; (void)ev;
	s->probe_h = -1;
	if (s->state != SRV_STARTING)
		return;
	if (s->s.readiness == READY_PROBE) {
		struct err *pe = sup_err();
		struct sup_probes *pr;
		if (sup_hp_running(s))
			return;
		if ((pr = sup_probes(s)) == NULL)
			err_sys(pe, ERR_IO, "no memory for the readiness probe");
		else if (hprobe_start(&pr->hp, &s->r, &s->hps, 2000, on_hp_done, s, pe) == 0)
			return;
		str_copy(s->probe_err, sizeof s->probe_err, pe->msg);
	} else if (s->s.readiness == READY_CODEX_INIT) {
		struct sup_probes *pr;
		if (sup_ws_running(s))
			return;
		if ((pr = sup_probes(s)) != NULL && wsprobe_start(&pr->ws, &s->r, s->h->socket,
		    APPD_VERSION, WSPROBE_DEFAULT_TIMEOUT_MS, on_ws_done, s) == 0)
			return;
		str_copy(s->probe_err, sizeof s->probe_err,
		    pr != NULL ? pr->ws.err.msg : "no memory for the readiness probe");
	} else if (sock_probe(s->h->socket) == 1) {
		srv_event(s, SEV_READY);
		return;
	}
	probe_later(s);
}

void
ready_dir_changed(struct sup *s)
{
	/* something appeared in run/: probe now, and on the next turns */
	if (s->state == SRV_STARTING && !sup_ws_running(s) &&
	    (s->s.readiness == READY_CONNECT || s->s.readiness == READY_CODEX_INIT)) {
		s->probe_fast = PROBE_FAST;
		s->probe_ms = PROBE_MIN_MS;
		probe_at(s, 0);
	}
}

static void
close_notify_pipe(struct sup *s)
{
	sup_cancel(s, &s->notify_h);
	if (s->notify_rd >= 0)
		close(s->notify_rd);
	if (s->notify_wr >= 0)
		close(s->notify_wr);
	s->notify_rd = s->notify_wr = -1;
}

static void
on_notify_fd(struct reactor *r, int h, int ev, void *arg)
{
	struct sup *s = arg;
	char buf[256];
	ssize_t n;

	(void)r; (void)h; (void)ev;
	n = fd_read(s->notify_rd, buf, sizeof buf);
	if (n > 0 && memchr(buf, '\n', (size_t)n) == NULL)
		return;
	/* ready, EOF or error: this channel is done */
	close_notify_pipe(s);
	if (n > 0)
		srv_event(s, SEV_READY);
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
		for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			if (strcmp(line, "READY=1") == 0 && s->s.readiness == READY_NOTIFY)
				srv_event(s, SEV_READY);
			else if (strcmp(line, "WATCHDOG=1") == 0)
				live_watchdog_ping(s);
		}
	}
}

int
ready_open_notify_socket(struct sup *s, struct err *e)
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

int
ready_prepare(struct sup *s, struct err *e)
{
	int p[2];

	s->probe_err[0] = '\0';
	if (s->s.readiness != READY_NOTIFY)
		return -1;
	close_notify_pipe(s);
	if (compat_pipe(p, 0) < 0) {
		err_sys(e, ERR_SPAWN, "cannot create the readiness pipe");
		return -2;
	}
	s->notify_rd = p[0];
	s->notify_wr = p[1];
	return p[1];
}

void
ready_start(struct sup *s)
{
	enum readiness k = s->s.readiness;

	if (s->notify_wr >= 0) {
		close(s->notify_wr);    /* the server has its copy */
		s->notify_wr = -1;
	}
	if (k == READY_CONNECT && s->lfd >= 0)
		k = READY_NONE;
	switch (k) {
	case READY_NONE:
		srv_event(s, SEV_READY);
		break;
	case READY_NOTIFY:
		s->notify_h = reactor_io_add(&s->r, s->notify_rd, REACTOR_READ, on_notify_fd, s);
		break;
	case READY_PROBE: {
		struct err *pe = sup_err();
		if (hprobe_parse(settings_str(&s->s, s->s.ready_spec), s->h->socket, &s->hps, pe) < 0) {
			str_copy(s->probe_err, sizeof s->probe_err, pe->msg);
			break;          /* the ready timeout reports it */
		}
		s->probe_ms = PROBE_MIN_MS;
		s->probe_fast = 0;
		probe_at(s, 0);
		break;
	}
	case READY_CONNECT:
	case READY_CODEX_INIT:
		/* the supervisor's run/ watch calls ready_dir_changed */
		s->probe_ms = PROBE_MIN_MS;
		s->probe_fast = 0;
		probe_at(s, 0);
		break;
	}
}

void
ready_end(struct sup *s)
{
	sup_cancel(s, &s->probe_h);
	sup_probes_cancel(s);
	close_notify_pipe(s);
}

const char *
ready_last_error(const struct sup *s)
{
	return s->probe_err;
}
