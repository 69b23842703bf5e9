/*
 * wsprobe.h -- the `codex-initialize` readiness probe: one WebSocket
 * client session over the app-server's Unix control socket, driven by the
 * reactor (no blocking I/O, no sleeps).
 *
 * Sequence (seed contract section 3.4, client.rs @211e2393):
 *   1. non-blocking connect(2) to the Unix socket;
 *   2. HTTP/1.1 upgrade: `GET /` with Host: localhost, a random 16-byte
 *      Sec-WebSocket-Key, version 13; the answer must be `101` with
 *      Upgrade: websocket, Connection: upgrade and the right
 *      Sec-WebSocket-Accept (RFC 6455 section 4.1);
 *   3. one masked text frame:
 *      {"id":1,"method":"initialize","params":{"clientInfo":{"name":"appd",
 *       "title":"appd","version":"<client_version>"}}}
 *      (no "jsonrpc" member: the Codex convention);
 *   4. read frames until a text message holding an object with "id":1;
 *      notifications (no id), other ids and binary messages are skipped,
 *      pings answered with pongs, pongs ignored; a close frame or EOF is
 *      "app-server closed the control socket";
 *   5. take result.userAgent, send {"method":"initialized"} and a close
 *      frame (1000), close the socket; the version is the text after the
 *      first '/' of the user agent up to the first whitespace.
 * The whole session is bounded by one reactor timer (`timeout_ms`; the
 * seed uses 2 s).  Messages (after reassembly of fragments) are bounded by
 * WSPROBE_MSG_MAX bytes, the HTTP answer header by HTTP_HDR_MAX (core/net/http.h).
 *
 * Memory: everything lives in the caller-owned `struct wsprobe` (about
 * 150 KiB: keep it static or inside a larger static object); nothing is
 * allocated.  A struct must be zeroed before its first use (static
 * storage is); afterwards it can be reused for any number of probes.
 */
#ifndef APPD_WSPROBE_H
#define APPD_WSPROBE_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/err.h"
#include "core/net/http.h"
#include "core/net/job.h"

struct reactor;

#define WSPROBE_DEFAULT_TIMEOUT_MS 2000
#define WSPROBE_MSG_MAX   (128 * 1024)   /* one (reassembled) message */
#define WSPROBE_OUT_MAX   2048           /* queued output */
#define WSPROBE_PATH_MAX  256
#define WSPROBE_MAX_TOKENS 512           /* JSON tokens per message */

struct wsprobe;
typedef void wsprobe_done_cb(struct wsprobe *p, void *arg);

struct wsprobe {
	/* ---- results: valid when `done` runs ---- */
	int ok;                         /* 1: initialize answered, version parsed */
	char version[64];               /* e.g. "0.169.0" */
	char user_agent[512];           /* result.userAgent as sent */
	struct err err;                 /* ERR_NOT_READY + message when !ok */
	int os_errno;                   /* errno of a failed connect (ENOENT,
	                                 * ECONNREFUSED, EAGAIN: backlog full),
	                                 * else 0 */

	/* ---- private ---- */
	struct job job;                 /* the start/done rule: core/net/job.h */
	wsprobe_done_cb *done;
	void *arg;
	int state;
	int fd;
	int io_h, timer_h;
	unsigned io_mask;
	char path[WSPROBE_PATH_MAX];
	char accept[32];                /* expected Sec-WebSocket-Accept */
	unsigned char out[WSPROBE_OUT_MAX];
	size_t out_off, out_len;
	uint64_t sent, init_mark;       /* bytes sent / queued through initialize */
	struct http_parser hp;          /* the 101 answer */
	/* frame parser */
	unsigned char fh[14];           /* frame header being read */
	size_t fh_len;
	int in_payload;
	int f_fin, f_op;
	uint64_t f_len, f_got;
	unsigned char ctl[125];         /* control frame payload */
	int msg_op;                     /* 0 none, 1 text, 2 binary in progress */
	size_t msg_len;
	char msg[WSPROBE_MSG_MAX + 1];
};

/*
 * Start a probe of the Unix socket `sock_path` on reactor `r`.
 * `client_version` (at most 63 bytes) goes into clientInfo.version;
 * `timeout_ms` bounds the whole session (0: WSPROBE_DEFAULT_TIMEOUT_MS).
 *
 * Returns 0 when the probe is started: `done(p, arg)` is then called
 * exactly once, from a reactor callback, after the probe has closed its
 * fd and removed its watches, so `done` may start a new probe with the
 * same struct.  Results are in p->ok / p->version / p->user_agent / p->err.
 *
 * Returns -1 when nothing was started and done is not called (the rule of
 * core/net/job.h): ERR_NOT_READY "failed to connect to <socket>:
 * <strerror>" when the connect fails at once (p->os_errno: ENOENT,
 * ECONNREFUSED, EAGAIN for a full backlog), else ERR_OTHER with errno
 * EINVAL for bad arguments or a path longer than sun_path, EBUSY if `p`
 * is still running, ENOSPC when the reactor table is full.
 *
 * Failures reported through done, all ERR_NOT_READY:
 *   failed to upgrade <socket>: <why>
 *   timed out probing app-server control socket <socket>  (before the 101)
 *   timed out waiting for initialize response
 *   failed to send initialize request: <strerror>
 *   app-server closed the control socket
 *   failed to parse app-server JSON-RPC message
 *   failed to parse initialize response[: <why>]
 *   app-server websocket protocol error: <why>     (masked server frame,
 *       oversized frame or message, bad opcode/flags)
 *   app-server user-agent omitted version separator
 *   app-server user-agent omitted version
 */
int wsprobe_start(struct wsprobe *p, struct reactor *r, const char *sock_path,
    const char *client_version, uint64_t timeout_ms,
    wsprobe_done_cb *done, void *arg);

/* Stop a running probe: remove its watch and timer, close its fd; `done`
 * is not called.  A no-op on a probe that is not running (or a zeroed
 * struct). */
void wsprobe_cancel(struct wsprobe *p);

/* 1 while a started probe has not yet called done. */
int wsprobe_running(const struct wsprobe *p);

/*
 * The app-server version from a user agent: the text after the first '/'
 * up to the first whitespace ("codex_app_server/0.169.0 (Linux; x86_64)"
 * gives "0.169.0").  0, or -1 with `e` set (ERR_NOT_READY):
 * "app-server user-agent omitted version separator" when there is no '/',
 * "app-server user-agent omitted version" when the text is empty, and
 * "app-server user-agent version is too long" when it does not fit `cap`.
 */
int wsprobe_version_from_user_agent(const char *ua, char *out, size_t cap, struct err *e);

/* Sec-WebSocket-Accept for `key`: base64(SHA-1(key ||
 * "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), 28 characters + NUL. */
void wsprobe_accept_for_key(const char *key, char out[29]);

#endif
