/*
 * fuzz_http.c -- the HTTP/1.1 response parser (core/net/http.c) as the
 * updater's fetch drives it: bytes arrive in pieces of any size, the
 * header ends (HTTP_EV_HEADERS), the body is framed by Content-Length,
 * chunked coding or the end of the connection, and the connection may
 * end at any point (http_eof).  Header values the updater reads (ETag,
 * Retry-After, Location, Content-Length) go through the same helpers it
 * uses.
 *
 * Input: byte 0 picks the piece size (1..16, or everything at once) and
 * whether the response is to a HEAD-like request (no body); the rest is
 * the response.  Checks: every piece is consumed as reported (never more
 * than given), data events point into the piece just fed, and a body
 * with a Content-Length delivers exactly that many bytes when it ends
 * with HTTP_EV_DONE.
 */
#include "tests/fuzz/fuzz.h"

#include <time.h>

#include "core/net/http.h"
#include "core/net/https.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_parser h;
	const unsigned char *p;
	size_t n, piece;
	int no_body, done = 0;
	uint64_t body = 0;
	int64_t clen = -1;

	if (size < 1)
		return 0;
	piece = (data[0] & 0x0f) + 1;
	if (data[0] & 0x10)
		piece = size;
	no_body = (data[0] & 0x20) != 0;
	p = data + 1;
	n = size - 1;
	http_init(&h);
	while (!done) {
		size_t give = n < piece ? n : piece, used;
		enum http_ev ev;

		used = http_feed(&h, p, give, &ev);
		if (used > give)
			fuzz_fail("took %zu of %zu bytes", used, give);
		switch (ev) {
		case HTTP_EV_HEADERS: {
			const char *v;
			char next[HTTPS_URL_MAX + 1];
			enum https_fail kind;
			const char *why;

			if (h.status >= 100 && h.status < 200 && h.status != 101) {
				http_init(&h);      /* interim response: the next one follows */
				break;
			}
			if (h.status < 100 || h.status > 999)
				fuzz_fail("status %d", h.status);
			v = http_header(&h, "Retry-After");
			if (v != NULL)
				(void)http_retry_after(v, (time_t)1767225600);
			v = http_header(&h, "Location");
			if (v != NULL)
				(void)https_resolve_location("https://example.com/a/b?q", v,
				    next, sizeof next, &kind, &why);
			v = http_header(&h, "Connection");
			if (v != NULL)
				(void)http_list_has(v, "close");
			(void)http_header(&h, "ETag");
			if (http_body_begin(&h, no_body) < 0) {
				done = 1;
				break;
			}
			clen = h.framing == HTTP_FRAME_LENGTH ? h.content_length : -1;
			break;
		}
		case HTTP_EV_DATA:
			if (h.data < p || h.data + h.len > p + used)
				fuzz_fail("data outside the piece fed");
			body += h.len;
			break;
		case HTTP_EV_DONE:
			if (clen >= 0 && body != (uint64_t)clen)
				fuzz_fail("body of %llu bytes for Content-Length %lld",
				    (unsigned long long)body, (long long)clen);
			done = 1;
			break;
		case HTTP_EV_ERROR:
			if (h.error == NULL)
				fuzz_fail("error without a message");
			done = 1;
			break;
		case HTTP_EV_MORE:
			break;
		}
		if (ev == HTTP_EV_MORE && used != give)
			fuzz_fail("HTTP_EV_MORE after taking %zu of %zu bytes", used, give);
		if (ev == HTTP_EV_DATA && used == 0)
			fuzz_fail("a data event that took nothing");
		p += used;
		n -= used;
		if (!done && ev == HTTP_EV_MORE && n == 0) {
			/* the peer closes the connection */
			ev = http_eof(&h);
			if (ev == HTTP_EV_DONE && clen >= 0 && body != (uint64_t)clen)
				fuzz_fail("eof ends a short Content-Length body");
			if (ev == HTTP_EV_ERROR && h.error == NULL)
				fuzz_fail("eof error without a message");
			done = 1;
		}
	}
	return 0;
}
