/*
 * test_http.c -- the push-style HTTP/1.1 response parser (core/net/http.h,
 * RFC 9112): fed whole, fed one byte at a time, and fed every split of
 * the input in two, it must give the same events and body.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/net/http.h"

#include <string.h>

static struct http_parser H;

struct result {
	int headers;             /* HTTP_EV_HEADERS seen */
	int done, error;
	const char *why;
	char body[4096];
	size_t body_len;
};

/* Feed `msg` in pieces of `step` bytes (0: all at once, -1: split at
 * `split` into two); begin the body at the headers unless `upgrade`.
 * `eof`: end the connection after the last byte. */
static void
run(const char *msg, int step, size_t split, int eof, struct result *r)
{
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = strlen(msg), off = 0;

	memset(r, 0, sizeof *r);
	http_init(&H);
	while (!r->done && !r->error) {
		size_t piece = step == 0 ? n - off : step > 0 ? (size_t)step :
		    off < split ? split - off : n - off;
		const unsigned char *q;
		size_t left;

		if (piece > n - off)
			piece = n - off;
		q = p + off;
		left = piece;
		for (;;) {
			enum http_ev ev;
			size_t k = http_feed(&H, q, left, &ev);

			q += k;
			left -= k;
			if (ev == HTTP_EV_MORE)
				break;
			if (ev == HTTP_EV_HEADERS) {
				r->headers++;
				if (H.status < 200) {
					http_init(&H);
					continue;
				}
				if (http_body_begin(&H, H.status == 204 || H.status == 304) < 0) {
					r->error = 1;
					r->why = H.error;
					break;
				}
			} else if (ev == HTTP_EV_DATA) {
				assert_true(r->body_len + H.len < sizeof r->body);
				memcpy(r->body + r->body_len, H.data, H.len);
				r->body_len += H.len;
			} else if (ev == HTTP_EV_DONE) {
				r->done = 1;
				break;
			} else {
				r->error = 1;
				r->why = H.error;
				break;
			}
		}
		off += piece;
		if (off == n) {
			if (!r->done && !r->error && eof) {
				if (http_eof(&H) == HTTP_EV_DONE)
					r->done = 1;
				else
					r->error = 1, r->why = H.error;
			}
			break;
		}
	}
	r->body[r->body_len] = '\0';
}

/* The same result for every way of feeding `msg`. */
static void
check_all_feeds(const char *msg, int eof, int done, const char *body)
{
	struct result r;
	size_t n = strlen(msg);

	for (int mode = 0; mode < 2; mode++) {
		run(msg, mode == 0 ? 0 : 1, 0, eof, &r);
		assert_int_equal(r.done, done);
		if (done)
			assert_string_equal(r.body, body);
	}
	for (size_t s = 1; s < n; s++) {
		run(msg, -1, s, eof, &r);
		if (r.done != done)
			fail_msg("split at %zu: done %d", s, r.done);
		if (done && strcmp(r.body, body) != 0)
			fail_msg("split at %zu: body \"%s\"", s, r.body);
	}
}

static void
content_length_body(void **state)
{
	(void)state;
	check_all_feeds("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\nhelloEXTRA",
	    0, 1, "hello");
	run("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag:  \"x\" \r\n\r\nhello", 0, 0, 0,
	    &(struct result){ 0 });
	assert_int_equal(H.status, 200);
	assert_int_equal(H.content_length, 5);
	assert_string_equal(http_header(&H, "etag"), "\"x\"");
	assert_null(http_header(&H, "Location"));
}

static void
chunked_body_with_extensions_and_trailer(void **state)
{
	(void)state;
	check_all_feeds("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
	    "5;name=v\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", 0, 1,
	    "hello, world");
	check_all_feeds("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "A\nabcdefghij\n0\n\n", 0, 1, "abcdefghij");
}

static void
close_delimited_body_ends_at_eof(void **state)
{
	(void)state;
	check_all_feeds("HTTP/1.0 200 OK\r\n\r\nuntil the end", 1, 1, "until the end");
	check_all_feeds("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 0, 1, "");
}

static void
interim_responses_are_skipped(void **state)
{
	struct result r;

	(void)state;
	run("\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1, 0,
	    0, &r);
	assert_int_equal(r.headers, 2);
	assert_true(r.done);
	assert_string_equal(r.body, "ok");
}

static void
malformed_responses_are_errors(void **state)
{
	static const struct { const char *msg, *why; } cases[] = {
		{ "HTTP/2 200 OK\r\n\r\n", "bad status line" },
		{ "HTTP/1.1 20 OK\r\n\r\n", "bad status line" },
		{ "HTTP/1.1 099 Odd\r\n\r\n", "bad status code" },
		{ "HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "header line without a colon" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "bad Content-Length" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		  "conflicting Content-Length" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY", "missing CRLF after chunk data" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n",
		  "chunk size too large" },
	};
	struct result r;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		run(cases[i].msg, 0, 0, 0, &r);
		if (!r.error || strcmp(r.why, cases[i].why) != 0)
			fail_msg("%s: error %d \"%s\", want \"%s\"", cases[i].msg, r.error,
			    r.why ? r.why : "", cases[i].why);
	}
}

static void
truncation_is_reported_at_eof(void **state)
{
	struct result r;

	(void)state;
	run("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0, 0, 1, &r);
	assert_true(r.error);
	assert_string_equal(r.why, "truncated body");
	run("HTTP/1.1 200 OK\r\nContent-", 0, 0, 1, &r);
	assert_true(r.error);
	assert_string_equal(r.why, "truncated header");
}

static void
an_oversized_header_is_refused(void **state)
{
	static char msg[HTTP_HDR_MAX + 64];
	struct result r;

	(void)state;
	strcpy(msg, "HTTP/1.1 200 OK\r\nX: ");
	memset(msg + strlen(msg), 'a', HTTP_HDR_MAX);
	msg[sizeof msg - 1] = '\0';
	run(msg, 0, 0, 0, &r);
	assert_true(r.error);
	assert_string_equal(r.why, "response header too large");
}

static void
an_upgrade_stops_at_the_header(void **state)
{
	const char *msg = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: keep-alive, Upgrade\r\n\r\n\x81\x02hi";
	enum http_ev ev;
	size_t k;

	(void)state;
	http_init(&H);
	k = http_feed(&H, (const unsigned char *)msg, strlen(msg), &ev);
	assert_int_equal(ev, HTTP_EV_HEADERS);
	assert_int_equal(H.status, 101);
	assert_string_equal(msg + k, "\x81\x02hi");     /* the rest is not HTTP */
	assert_true(http_list_has(http_header(&H, "connection"), "upgrade"));
	assert_false(http_list_has("keep-alive, upgraded", "upgrade"));
	/* not begun: feeding more gives the same event and takes nothing */
	assert_int_equal(http_feed(&H, (const unsigned char *)"x", 1, &ev), 0);
	assert_int_equal(ev, HTTP_EV_HEADERS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(content_length_body),
		cmocka_unit_test(chunked_body_with_extensions_and_trailer),
		cmocka_unit_test(close_delimited_body_ends_at_eof),
		cmocka_unit_test(interim_responses_are_skipped),
		cmocka_unit_test(malformed_responses_are_errors),
		cmocka_unit_test(truncation_is_reported_at_eof),
		cmocka_unit_test(an_oversized_header_is_refused),
		cmocka_unit_test(an_upgrade_stops_at_the_header),
	};
	return cmocka_run_group_tests_name("http parser", tests, NULL, NULL);
}
