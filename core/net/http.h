/*
 * http.h -- a push-style HTTP/1.1 response parser (RFC 9112), driven the
 * way BearSSL's engine is: the caller feeds whatever bytes it has and
 * gets back how many were taken and what happened.  No I/O, no
 * allocation: the caller owns `struct http_parser` (about 17 KiB).  Used
 * by the HTTPS client (core/net/https.c) and the WebSocket upgrade of the
 * codex-initialize probe (core/net/wsprobe.c); tests feed it bytes.
 *
 * Sequence:
 *   http_init(h)
 *   loop: k = http_feed(h, p, n, &ev); p += k; n -= k;
 *     HTTP_EV_MORE      every byte was taken; feed more (or http_eof)
 *     HTTP_EV_HEADERS   the status line and header block are complete:
 *                       read h->status, http_header(); then either
 *                       http_body_begin() to read a body, or stop (an
 *                       upgrade: the rest of the bytes are not HTTP), or
 *                       http_init() again after an interim 1xx
 *     HTTP_EV_DATA      body bytes h->data[0 .. h->len) (inside `p`)
 *     HTTP_EV_DONE      the body is complete (extra bytes are not taken)
 *     HTTP_EV_ERROR     malformed; h->error says why (a static string)
 *
 * Framing (RFC 9112 §6.3): a Transfer-Encoding whose last coding is
 * "chunked" is decoded (chunk extensions and trailers are skipped); any
 * other transfer coding is refused by http_body_begin; otherwise
 * Content-Length (conflicting values are an error); otherwise the body
 * ends when the connection does (http_eof).  Header lines must fit
 * HTTP_HDR_MAX bytes in all; obsolete line folding is ignored; a stray
 * empty line before the status line is skipped.
 */
#ifndef APPD_HTTP_H
#define APPD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HTTP_HDR_MAX 16384
#define HTTP_FIELDS_MAX 64

enum http_ev { HTTP_EV_MORE = 0, HTTP_EV_HEADERS, HTTP_EV_DATA, HTTP_EV_DONE, HTTP_EV_ERROR };
enum http_framing { HTTP_FRAME_NONE = 0, HTTP_FRAME_LENGTH, HTTP_FRAME_CHUNKED, HTTP_FRAME_CLOSE };

struct http_parser {
	/* ---- results ---- */
	int status;                   /* after HTTP_EV_HEADERS: 100..999 */
	int64_t content_length;       /* -1: none given (or chunked) */
	int chunked;                  /* Transfer-Encoding ends with chunked */
	int other_coding;             /* a Transfer-Encoding that is not chunked */
	enum http_framing framing;    /* after http_body_begin */
	const unsigned char *data;    /* HTTP_EV_DATA */
	size_t len;
	const char *error;            /* HTTP_EV_ERROR */
	/* ---- private ---- */
	int phase, chunk_state, chunk_digits, nfields;
	uint64_t remaining;
	size_t hdr_len;
	unsigned short field[HTTP_FIELDS_MAX][2];   /* name, value offsets in hdr */
	char hdr[HTTP_HDR_MAX + 1];
};

void http_init(struct http_parser *h);

/* Take bytes from `p` (`n`, may be 0); see the sequence above.  Returns
 * how many were taken; `*ev` the event. */
size_t http_feed(struct http_parser *h, const unsigned char *p, size_t n, enum http_ev *ev);

/* After HTTP_EV_HEADERS: the (first) value of header `name`, compared
 * case-insensitively, with surrounding blanks removed; NULL if absent. */
const char *http_header(const struct http_parser *h, const char *name);

/* 1 when the comma-separated `list` has the element `tok` (any case). */
int http_list_has(const char *list, const char *tok);

/* After HTTP_EV_HEADERS: read the body as the message frames it, or none
 * when `no_body` (a response to HEAD, 204, 304).  0, or -1 with h->error
 * for a transfer coding other than chunked. */
int http_body_begin(struct http_parser *h, int no_body);

/* The connection ended.  HTTP_EV_DONE when that ends the message (a
 * close-delimited body, or nothing was pending), else HTTP_EV_ERROR
 * (h->error: "truncated ..."). */
enum http_ev http_eof(struct http_parser *h);

/*
 * Retry-After value -> seconds from `now` (Unix time): delta-seconds, or
 * an HTTP-date (IMF-fixdate, RFC 850 or asctime form, RFC 9110 5.6.7);
 * a date in the past gives 0.  -1 when the value parses as neither.
 * Delta-seconds are capped at 10^9.
 */
long long http_retry_after(const char *value, time_t now);

#endif
