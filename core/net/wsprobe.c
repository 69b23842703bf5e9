/* wsprobe.c -- see wsprobe.h. */
#include "core/net/wsprobe.h"
#include "core/net/job.h"
#include "core/net/http.h"
#include "core/base/hex.h"
#include "core/base/fmt.h"
#include "core/base/entropy.h"
#include "platform/compat.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "platform/reactor.h"

#include <bearssl.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum {
	ST_IDLE = 0,
	ST_CONNECTING,   /* connect(2) in progress (EINPROGRESS) */
	ST_UPGRADING,    /* request queued/sent, reading the HTTP answer */
	ST_RESPONSE,     /* initialize sent, reading frames */
	ST_CLOSING       /* initialized + close queued, flushing */
};

enum {
	OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2,
	OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xA
};

/* ---- small helpers ---- */


void
wsprobe_accept_for_key(const char *key, char out[29])
{
	br_sha1_context c;
	unsigned char h[20];

	br_sha1_init(&c);
	br_sha1_update(&c, key, strlen(key));
	br_sha1_update(&c, WS_GUID, sizeof WS_GUID - 1);
	br_sha1_out(&c, h);
	base64_encode(h, sizeof h, out);
}

int
wsprobe_version_from_user_agent(const char *ua, char *out, size_t cap, struct err *e)
{
	const char *s = strchr(ua, '/');
	size_t n = 0;

	if (s == NULL)
		return err_set(e, ERR_NOT_READY, "app-server user-agent omitted version separator");
	s++;
	while (s[n] != '\0' && !isspace((unsigned char)s[n]))
		n++;
	if (n == 0)
		return err_set(e, ERR_NOT_READY, "app-server user-agent omitted version");
	if (n >= cap)
		return err_set(e, ERR_NOT_READY, "app-server user-agent version is too long");
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int
wsprobe_running(const struct wsprobe *p)
{
	return p->job.active;
}

/* ---- lifecycle ---- */

static void
release(struct wsprobe *p)
{
	job_release(&p->job);
	p->state = ST_IDLE;
}

/* End the probe: release everything and call done (job.h).  The caller
 * must not touch `p` afterwards (done may have started a new probe on
 * it): every function below returns -1 once finish() ran. */
static int
finish(struct wsprobe *p)
{
	p->state = ST_IDLE;
	if (job_end(&p->job))
		p->done(p, p->arg);
	return -1;
}

static int
fail(struct wsprobe *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct wsprobe *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(&p->err, ERR_NOT_READY, fmt, ap);
	va_end(ap);
	p->ok = 0;
	return finish(p);
}

void
wsprobe_cancel(struct wsprobe *p)
{
	if (p->job.active)
		release(p);
}

/* ---- output ---- */

static int
queue(struct wsprobe *p, const void *data, size_t n)
{
	if (p->out_off > 0 && p->out_len + n > sizeof p->out) {
		memmove(p->out, p->out + p->out_off, p->out_len - p->out_off);
		p->out_len -= p->out_off;
		p->out_off = 0;
	}
	if (p->out_len + n > sizeof p->out)
		return -1;
	memcpy(p->out + p->out_len, data, n);
	p->out_len += n;
	return 0;
}

/* Queue one final, masked client frame (payload < WSPROBE_OUT_MAX - 8). */
static int
queue_frame(struct wsprobe *p, int op, const void *payload, size_t n)
{
	unsigned char f[WSPROBE_OUT_MAX];
	const unsigned char *src = payload;
	unsigned char mask[4];
	size_t h = 0;

	if (n + 8 > sizeof f)
		return -1;
	f[h++] = (unsigned char)(0x80 | op);
	if (n < 126) {
		f[h++] = (unsigned char)(0x80 | n);
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (unsigned char)(n >> 8);
		f[h++] = (unsigned char)n;
	}
	{
		/* RFC 6455 §5.3 wants an unpredictable mask; a probe of a local
		 * server can live with a fixed one when the kernel gives none */
		struct err e;
		err_clear(&e);
		if (entropy_get(mask, sizeof mask, &e) < 0)
			memset(mask, 0x5a, sizeof mask);
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < n; i++)
		f[h + i] = src[i] ^ mask[i & 3];
	return queue(p, f, h + n);
}

/* Send what is queued.  0 (all sent or EAGAIN), or -1 with errno. */
static int
flush(struct wsprobe *p)
{
	while (p->out_off < p->out_len) {
		ssize_t n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off,
		    COMPAT_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		p->out_off += (size_t)n;
		p->sent += (uint64_t)n;
	}
	p->out_off = p->out_len = 0;
	return 0;
}

/* Watch for what the current state needs: write interest only while
 * output is pending. */
static int
update_interest(struct wsprobe *p)
{
	unsigned m;
	int pending = p->out_off < p->out_len;

	if (p->state == ST_CONNECTING)
		m = REACTOR_WRITE;
	else if (p->state == ST_CLOSING)
		m = REACTOR_WRITE;
	else
		m = REACTOR_READ | (pending ? REACTOR_WRITE : 0u);
	if (m != p->io_mask) {
		if (reactor_io_set(p->job.r, p->io_h, m) < 0)
			return fail(p, "failed to watch %s: %s", p->path, strerror(errno));
		p->io_mask = m;
	}
	return 0;
}

/* ---- the end of the session ---- */

/* Queue initialized + close; the result (ok or a user-agent error) is
 * decided already.  Finishes at once when the output goes out in one go. */
static int
start_closing(struct wsprobe *p)
{
	static const char initialized[] = "{\"method\":\"initialized\"}";
	static const unsigned char bye[2] = { 1000 >> 8, 1000 & 0xff };

	p->state = ST_CLOSING;
	if (queue_frame(p, OP_TEXT, initialized, sizeof initialized - 1) < 0 ||
	    queue_frame(p, OP_CLOSE, bye, sizeof bye) < 0)
		return finish(p);      /* errors are ignored here, as in the seed */
	if (flush(p) < 0 || p->out_off >= p->out_len)
		return finish(p);
	return update_interest(p);
}

/* ---- messages ---- */

static int
on_message(struct wsprobe *p)
{
	jsmntok_t tok[WSPROBE_MAX_TOKENS];
	struct jsonr jr;
	long long id;
	int i, res, ua;

	p->msg[p->msg_len] = '\0';
	if (jsonr_parse(&jr, p->msg, p->msg_len, tok, WSPROBE_MAX_TOKENS) < 0) {
		/* Too many tokens: far bigger than any initialize response,
		 * so it is some other message; skip it. */
		if (errno == ENOMEM)
			return 0;
		return fail(p, "failed to parse app-server JSON-RPC message");
	}
	i = jsonr_get(&jr, 0, "id");
	if (i < 0 || jsonr_int(&jr, i, &id) < 0 || id != 1)
		return 0;              /* notification, or another id */
	res = jsonr_get(&jr, 0, "result");
	if (res < 0) {
		char m[256] = "no result";
		int e = jsonr_get(&jr, 0, "error");
		if (e >= 0 && jsonr_str(&jr, jsonr_get(&jr, e, "message"), m + 14,
		    sizeof m - 14) == 0)
			memcpy(m, "server error: ", 14);
		else if (e >= 0)
			fmt_n(m, sizeof m, "server error");
		return fail(p, "failed to parse initialize response: %s", m);
	}
	ua = jsonr_get(&jr, res, "userAgent");
	if (jsonr_str(&jr, ua, p->user_agent, sizeof p->user_agent) < 0) {
		p->user_agent[0] = '\0';
		return fail(p, "failed to parse initialize response: %s",
		    ua < 0 ? "missing result.userAgent" : "bad result.userAgent");
	}
	if (wsprobe_version_from_user_agent(p->user_agent, p->version,
	    sizeof p->version, &p->err) == 0) {
		p->ok = 1;
	} else {
		p->ok = 0;
		p->version[0] = '\0';
	}
	return start_closing(p);
}

/* ---- frames ---- */

static int
proto(struct wsprobe *p, const char *why)
{
	return fail(p, "app-server websocket protocol error: %s", why);
}

/* The header is complete in fh[]: check it and set up the payload. */
static int
frame_begin(struct wsprobe *p)
{
	const unsigned char *h = p->fh;
	uint64_t len = h[1] & 0x7f;

	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
	} else if (len == 127) {
		len = 0;
		for (int k = 0; k < 8; k++)
			len = len << 8 | h[2 + k];
		if (len >> 63)
			return proto(p, "frame length has the high bit set");
	}
	p->f_len = len;
	p->f_got = 0;
	if (p->f_op >= 8) {
		if (len > sizeof p->ctl)
			return proto(p, "control frame longer than 125 bytes");
		return 0;
	}
	if (len > WSPROBE_MSG_MAX || p->msg_len + len > WSPROBE_MSG_MAX) {
		char why[96];
		fmt_n(why, sizeof why, "message longer than %d bytes", WSPROBE_MSG_MAX);
		return proto(p, why);
	}
	return 0;
}

/* First two header bytes known: validate flags and opcode. */
static int
frame_check(struct wsprobe *p)
{
	int b0 = p->fh[0], b1 = p->fh[1];

	p->f_fin = b0 & 0x80;
	p->f_op = b0 & 0x0f;
	if (b0 & 0x70)
		return proto(p, "reserved bits set");
	if (b1 & 0x80)
		return proto(p, "server frame is masked");
	switch (p->f_op) {
	case OP_CONT:
		if (p->msg_op == 0)
			return proto(p, "continuation frame without a message");
		break;
	case OP_TEXT:
	case OP_BINARY:
		if (p->msg_op != 0)
			return proto(p, "new message inside a fragmented one");
		p->msg_op = p->f_op;
		p->msg_len = 0;
		break;
	case OP_CLOSE:
	case OP_PING:
	case OP_PONG:
		if (!p->f_fin)
			return proto(p, "fragmented control frame");
		break;
	default:
		return proto(p, "unknown opcode");
	}
	return 0;
}

static int
frame_end(struct wsprobe *p)
{
	p->in_payload = 0;
	p->fh_len = 0;
	switch (p->f_op) {
	case OP_PING:
		if (queue_frame(p, OP_PONG, p->ctl, (size_t)p->f_len) < 0)
			return proto(p, "too much unsent output");
		return 0;
	case OP_PONG:
		return 0;
	case OP_CLOSE:
		return fail(p, "app-server closed the control socket");
	default:
		break;
	}
	p->msg_len += (size_t)p->f_len;
	if (!p->f_fin)
		return 0;
	if (p->msg_op == OP_TEXT) {
		p->msg_op = 0;
		return on_message(p);
	}
	p->msg_op = 0;               /* binary: skipped */
	return 0;
}

/* Feed bytes read after the HTTP header.  0, or -1 when finished. */
static int
feed(struct wsprobe *p, const unsigned char *b, size_t n)
{
	while (n > 0) {
		if (p->state != ST_RESPONSE)
			return 0;   /* closing: the rest is not needed */
		if (!p->in_payload) {
			size_t need = 2;

			p->fh[p->fh_len++] = *b++;
			n--;
			if (p->fh_len == 2 && frame_check(p) < 0)
				return -1;
			if (p->fh_len >= 2) {
				int l7 = p->fh[1] & 0x7f;
				need += l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
			}
			if (p->fh_len < need)
				continue;
			if (frame_begin(p) < 0)
				return -1;
			p->in_payload = 1;
		} else {
			uint64_t left = p->f_len - p->f_got;
			size_t k = left < n ? (size_t)left : n;

			if (p->f_op >= 8)
				memcpy(p->ctl + p->f_got, b, k);
			else if (p->msg_op == OP_TEXT)
				memcpy(p->msg + p->msg_len + p->f_got, b, k);
			p->f_got += k;
			b += k;
			n -= k;
		}
		if (p->in_payload && p->f_got == p->f_len && frame_end(p) < 0)
			return -1;
	}
	return 0;
}

/* ---- the HTTP upgrade ---- */

static int
upgrade_fail(struct wsprobe *p, const char *why)
{
	return fail(p, "failed to upgrade %s: %s", p->path, why);
}

/* The 101 response is complete in p->hp (RFC 6455 §4.2.2, §4.1). */
static int
check_upgrade(struct wsprobe *p)
{
	const char *up = http_header(&p->hp, "Upgrade");
	const char *conn = http_header(&p->hp, "Connection");
	const char *acc = http_header(&p->hp, "Sec-WebSocket-Accept");

	if (p->hp.status != 101) {
		char why[64];
		fmt_n(why, sizeof why, "unexpected HTTP status: %d", p->hp.status);
		return upgrade_fail(p, why);
	}
	if (up == NULL || strcasecmp(up, "websocket") != 0)
		return upgrade_fail(p, "missing \"Upgrade: websocket\"");
	if (conn == NULL || !http_list_has(conn, "upgrade"))
		return upgrade_fail(p, "missing \"Connection: upgrade\"");
	if (acc == NULL)
		return upgrade_fail(p, "missing Sec-WebSocket-Accept");
	if (strcmp(acc, p->accept) != 0)
		return upgrade_fail(p, "wrong Sec-WebSocket-Accept");
	return 0;
}

/* Bytes read while waiting for the 101; what follows it is WebSocket. */
static int
feed_header(struct wsprobe *p, const unsigned char *b, size_t n)
{
	enum http_ev ev;
	size_t used = http_feed(&p->hp, b, n, &ev);

	if (ev == HTTP_EV_ERROR)
		return upgrade_fail(p, p->hp.error);
	if (ev != HTTP_EV_HEADERS)
		return 0;
	if (check_upgrade(p) < 0)
		return -1;
	p->state = ST_RESPONSE;
	if (queue_frame(p, OP_TEXT, p->msg, p->msg_len) < 0)
		return proto(p, "too much unsent output");
	p->init_mark = p->sent + (uint64_t)(p->out_len - p->out_off);
	p->msg_len = 0;
	return feed(p, b + used, n - used);
}

/* ---- reactor callbacks ---- */

static int
on_readable(struct wsprobe *p)
{
	unsigned char buf[16384];
	ssize_t n;

	for (;;) {
		n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (p->state == ST_UPGRADING)
			return upgrade_fail(p, strerror(errno));
		return fail(p, "app-server closed the control socket: %s", strerror(errno));
	}
	if (n == 0) {
		if (p->state == ST_UPGRADING)
			return upgrade_fail(p, "connection closed before the response");
		return fail(p, "app-server closed the control socket");
	}
	if (p->state == ST_UPGRADING)
		return feed_header(p, buf, (size_t)n);
	return feed(p, buf, (size_t)n);
}

static int
on_writable(struct wsprobe *p)
{
	if (p->state == ST_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof soerr;

		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr != 0) {
			p->os_errno = soerr;
			return fail(p, "failed to connect to %s: %s", p->path, strerror(soerr));
		}
		p->state = ST_UPGRADING;
	}
	if (flush(p) == 0)
		return 0;
	switch (p->state) {
	case ST_UPGRADING:
		return upgrade_fail(p, strerror(errno));
	case ST_CLOSING:
		return finish(p);
	default:
		if (p->sent < p->init_mark)
			return fail(p, "failed to send initialize request: %s", strerror(errno));
		return fail(p, "app-server closed the control socket: %s", strerror(errno));
	}
}

static void
on_io(struct reactor *r, int h, int ev, void *arg)
{
	struct wsprobe *p = arg;

	(void)r; (void)h;
	if (p->state == ST_CONNECTING) {
		if (on_writable(p) < 0)
			return;
	} else if (p->state == ST_CLOSING) {
		if (on_writable(p) < 0)
			return;
		if (p->out_off >= p->out_len) {
			finish(p);
			return;
		}
	} else {
		if ((ev & REACTOR_WRITE) && on_writable(p) < 0)
			return;
		if ((ev & (REACTOR_READ | REACTOR_ERR)) && on_readable(p) < 0)
			return;
		/* replies queued while reading (pongs) go out now */
		if (p->state != ST_CLOSING && p->out_off < p->out_len &&
		    on_writable(p) < 0)
			return;
	}
	(void)update_interest(p);
}

static void
on_timer(struct reactor *r, int h, int ev, void *arg)
{
	struct wsprobe *p = arg;

	(void)r; (void)h; (void)ev;
	p->timer_h = -1;
	switch (p->state) {
	case ST_CONNECTING:
	case ST_UPGRADING:
		fail(p, "timed out probing app-server control socket %s", p->path);
		break;
	case ST_CLOSING:
		finish(p);              /* the result is known; give up the flush */
		break;
	default:
		fail(p, "timed out waiting for initialize response");
		break;
	}
}

/* ---- start ---- */

static int
start_error(struct wsprobe *p, int e, const char *msg)
{
	err_set(&p->err, ERR_OTHER, "wsprobe: %s", msg);
	release(p);
	errno = e;
	return -1;
}

/* The upgrade request (queued) and the initialize request (kept in msg[]
 * until the 101 arrives).  0, or -1 (start_error). */
static int
build_requests(struct wsprobe *p, const char *client_version)
{
	unsigned char keyraw[16];
	char key[32], req[512];
	struct jsonw w;
	int n;

	if (entropy_get(keyraw, sizeof keyraw, &p->err) < 0)
		return start_error(p, errno, "cannot get random bytes for the handshake key");
	base64_encode(keyraw, sizeof keyraw, key);
	wsprobe_accept_for_key(key, p->accept);
	n = fmt_n(req, sizeof req,
	    "GET / HTTP/1.1\r\n"
	    "Host: localhost\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "\r\n", key);
	(void)queue(p, req, (size_t)n);
	jsonw_init(&w, p->msg, sizeof p->msg);
	jsonw_obj_begin(&w);
	jsonw_kint(&w, "id", 1);
	jsonw_kstr(&w, "method", "initialize");
	jsonw_key(&w, "params");
	jsonw_obj_begin(&w);
	jsonw_key(&w, "clientInfo");
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "name", "appd");
	jsonw_kstr(&w, "title", "appd");
	jsonw_kstr(&w, "version", client_version);
	jsonw_obj_end(&w);
	jsonw_obj_end(&w);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0)
		return start_error(p, ENOSPC, "initialize request too long");
	p->msg_len = w.len;
	return 0;
}

/* A non-blocking connect to p->path, watched for writability.  0, or
 * -1: "failed to connect" (ERR_NOT_READY, p->os_errno) or start_error. */
static int
open_connection(struct wsprobe *p)
{
	struct sockaddr_un sa;
	int rc;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, p->path, strlen(p->path) + 1);
	p->fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (p->fd >= 0) {
		do
			rc = connect(p->fd, (struct sockaddr *)&sa, sizeof sa);
		while (rc < 0 && errno == EINTR);
		if (rc == 0 || errno == EINPROGRESS) {
			p->state = rc == 0 ? ST_UPGRADING : ST_CONNECTING;
			if ((p->io_h = reactor_io_add(p->job.r, p->fd, REACTOR_WRITE, on_io, p)) < 0)
				return start_error(p, errno, "reactor full");
			p->io_mask = REACTOR_WRITE;
			return 0;
		}
	}
	p->os_errno = errno;
	err_set(&p->err, ERR_NOT_READY, "failed to connect to %s: %s", p->path,
	    strerror(p->os_errno));
	release(p);
	errno = p->os_errno;
	return -1;
}

int
wsprobe_start(struct wsprobe *p, struct reactor *r, const char *sock_path,
    const char *client_version, uint64_t timeout_ms,
    wsprobe_done_cb *done, void *arg)
{
	int *const watches[] = { &p->io_h, &p->timer_h }, *const fds[] = { &p->fd };

	if (p->job.active) {
		err_set(&p->err, ERR_OTHER, "wsprobe: probe already running");
		errno = EBUSY;
		return -1;
	}
	job_begin(&p->job, r, watches, 2, fds, 1);
	err_clear(&p->err);
	p->ok = 0;
	p->os_errno = 0;
	p->version[0] = p->user_agent[0] = '\0';
	p->state = ST_IDLE;
	if (r == NULL || sock_path == NULL || client_version == NULL || done == NULL)
		return start_error(p, EINVAL, "bad arguments");
	if (strlen(client_version) >= 64)
		return start_error(p, EINVAL, "client version longer than 63 bytes");
	if (strlen(sock_path) >= sizeof ((struct sockaddr_un *)0)->sun_path ||
	    strlen(sock_path) >= sizeof p->path) {
		release(p);
		err_set(&p->err, ERR_OTHER, "socket path too long for a Unix socket: %s", sock_path);
		errno = EINVAL;
		return -1;
	}
	p->done = done;
	p->arg = arg;
	memcpy(p->path, sock_path, strlen(sock_path) + 1);
	p->out_off = p->out_len = 0;
	p->sent = 0;
	p->init_mark = UINT64_MAX;
	http_init(&p->hp);
	p->fh_len = 0;
	p->in_payload = 0;
	p->msg_op = 0;
	p->msg_len = 0;
	p->io_mask = 0;
	if (build_requests(p, client_version) < 0)
		return -1;
	if ((p->timer_h = reactor_timer_add(r, timeout_ms ? timeout_ms :
	    WSPROBE_DEFAULT_TIMEOUT_MS, on_timer, p)) < 0)
		return start_error(p, errno, "reactor full");
	if (open_connection(p) < 0)
		return -1;
	job_started(&p->job);
	return 0;
}
