/* http.c -- see http.h. */
#include "core/net/http.h"
#include "core/base/hex.h"
#include "core/base/scan.h"
#include "core/base/fsutil.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum { PH_HEAD = 0, PH_HEADERS_DONE, PH_BODY, PH_DONE, PH_ERROR };
enum { CK_SIZE = 0, CK_EXT, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_TRL_START, CK_TRL_LINE,
       CK_TRL_END_LF };

void
http_init(struct http_parser *h)
{
	h->status = 0;
	h->content_length = -1;
	h->chunked = h->other_coding = 0;
	h->framing = HTTP_FRAME_NONE;
	h->data = NULL;
	h->len = 0;
	h->error = NULL;
	h->phase = PH_HEAD;
	h->chunk_state = h->chunk_digits = h->nfields = 0;
	h->remaining = 0;
	h->hdr_len = 0;
}

static size_t
fail(struct http_parser *h, const char *why, size_t taken, enum http_ev *ev)
{
	h->phase = PH_ERROR;
	h->error = why;
	*ev = HTTP_EV_ERROR;
	return taken;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
http_list_has(const char *list, const char *tok)
{
	size_t n = strlen(tok);

	while (*list) {
		const char *end;
		size_t len;

		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		end = list;
		while (*end && *end != ',')
			end++;
		len = (size_t)(end - list);
		while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t'))
			len--;
		if (len == n && strncasecmp(list, tok, n) == 0)
			return 1;
		list = end;
	}
	return 0;
}

/* Is `tok` the last element of the comma-separated `list`? */
static int
list_ends_with(const char *list, const char *tok)
{
	const char *c = strrchr(list, ',');

	return http_list_has(c ? c + 1 : list, tok);
}

static int
digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The block in hdr[] is complete: split it into the status and fields. */
static const char *
parse_block(struct http_parser *h)
{
	char *line = h->hdr, *next, *colon, *v;
	int have_cl = 0;
	uint64_t cl = 0;

	next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	line = trim(line);
	if (strncmp(line, "HTTP/1.", 7) != 0 || !digit(line[7]) || line[8] != ' ' ||
	    !digit(line[9]) || !digit(line[10]) || !digit(line[11]) ||
	    (line[12] != ' ' && line[12] != '\0'))
		return "bad status line";
	h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (h->status < 100)
		return "bad status code";
	while ((line = next) != NULL && *line != '\0') {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line == ' ' || *line == '\t')
			continue;           /* obsolete line folding: ignored */
		if ((colon = strchr(line, ':')) == NULL) {
			if (*trim(line) == '\0')
				break;
			return "header line without a colon";
		}
		*colon = '\0';
		v = trim(colon + 1);
		if (h->nfields < HTTP_FIELDS_MAX) {
			h->field[h->nfields][0] = (unsigned short)(line - h->hdr);
			h->field[h->nfields][1] = (unsigned short)(v - h->hdr);
			h->nfields++;
		}
		if (strcasecmp(line, "Content-Length") == 0) {
			uint64_t x = 0;

			if (*v == '\0')
				return "bad Content-Length";
			for (const char *c = v; *c; c++) {
				if (!digit(*c) || x > UINT64_MAX / 10 - 10)
					return "bad Content-Length";
				x = x * 10 + (uint64_t)(*c - '0');
			}
			if (have_cl && x != cl)
				return "conflicting Content-Length";
			have_cl = 1;
			cl = x;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
			h->chunked = list_ends_with(v, "chunked");
			h->other_coding = !h->chunked;
		}
	}
	if (have_cl && cl <= INT64_MAX && !h->chunked)
		h->content_length = (int64_t)cl;
	return NULL;
}

/* Header bytes, one at a time up to the end of the block. */
static size_t
feed_head(struct http_parser *h, const unsigned char *p, size_t n, enum http_ev *ev)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = (char)p[i];
		size_t k;

		if (h->hdr_len >= HTTP_HDR_MAX)
			return fail(h, "response header too large", i, ev);
		h->hdr[h->hdr_len++] = c;
		k = h->hdr_len;
		if (c != '\n')
			continue;
		if (k == 1 || (k == 2 && h->hdr[0] == '\r')) {
			h->hdr_len = 0;         /* stray empty line */
			continue;
		}
		if (!(k >= 2 && h->hdr[k - 2] == '\n') &&
		    !(k >= 4 && memcmp(h->hdr + k - 4, "\r\n\r\n", 4) == 0))
			continue;
		h->hdr[k] = '\0';
		{
			const char *why = parse_block(h);
			if (why)
				return fail(h, why, i + 1, ev);
		}
		h->phase = PH_HEADERS_DONE;
		*ev = HTTP_EV_HEADERS;
		return i + 1;
	}
	*ev = HTTP_EV_MORE;
	return n;
}


/* A chunk-size line ended: data follows, or the trailer. */
static void
size_line_done(struct http_parser *h)
{
	h->chunk_state = h->remaining == 0 ? CK_TRL_START : CK_DATA;
}

/* Chunked framing (RFC 9112 §7.1): one event per call. */
static size_t
feed_chunked(struct http_parser *h, const unsigned char *p, size_t n, enum http_ev *ev)
{
	size_t i = 0;

	while (i < n) {
		int c = p[i];

		switch (h->chunk_state) {
		case CK_SIZE:
			if (hex_digit(c) >= 0) {
				if (++h->chunk_digits > 15)
					return fail(h, "chunk size too large", i, ev);
				h->remaining = h->remaining << 4 | (uint64_t)hex_digit(c);
			} else if (h->chunk_digits == 0) {
				return fail(h, "bad chunk size", i, ev);
			} else if (c == ';' || c == ' ' || c == '\t' || c == '\r') {
				h->chunk_state = CK_EXT;
			} else if (c == '\n') {
				size_line_done(h);
			} else {
				return fail(h, "bad chunk size", i, ev);
			}
			i++;
			break;
		case CK_EXT:
			if (c == '\n')
				size_line_done(h);
			i++;
			break;
		case CK_DATA: {
			size_t k = h->remaining < n - i ? (size_t)h->remaining : n - i;

			h->data = p + i;
			h->len = k;
			h->remaining -= k;
			if (h->remaining == 0)
				h->chunk_state = CK_DATA_CR;
			*ev = HTTP_EV_DATA;
			return i + k;
		}
		case CK_DATA_CR:
		case CK_DATA_LF:
			if (c == '\r' && h->chunk_state == CK_DATA_CR) {
				h->chunk_state = CK_DATA_LF;
			} else if (c == '\n') {
				h->chunk_state = CK_SIZE;
				h->chunk_digits = 0;
			} else {
				return fail(h, "missing CRLF after chunk data", i, ev);
			}
			i++;
			break;
		case CK_TRL_START:
			i++;
			if (c == '\n') {
				h->phase = PH_DONE;
				*ev = HTTP_EV_DONE;
				return i;
			}
			h->chunk_state = c == '\r' ? CK_TRL_END_LF : CK_TRL_LINE;
			break;
		case CK_TRL_LINE:
			if (c == '\n')
				h->chunk_state = CK_TRL_START;
			i++;
			break;
		case CK_TRL_END_LF:
			i++;
			if (c == '\n') {
				h->phase = PH_DONE;
				*ev = HTTP_EV_DONE;
				return i;
			}
			h->chunk_state = CK_TRL_LINE;
			break;
		}
	}
	*ev = HTTP_EV_MORE;
	return n;
}

size_t
http_feed(struct http_parser *h, const unsigned char *p, size_t n, enum http_ev *ev)
{
	switch (h->phase) {
	case PH_HEAD:
		return feed_head(h, p, n, ev);
	case PH_HEADERS_DONE:
		/* the caller did not begin a body: nothing more is HTTP */
		*ev = HTTP_EV_HEADERS;
		return 0;
	case PH_BODY:
		break;
	case PH_DONE:
		*ev = HTTP_EV_DONE;
		return 0;
	default:
		*ev = HTTP_EV_ERROR;
		return 0;
	}
	if (h->framing == HTTP_FRAME_CHUNKED)
		return feed_chunked(h, p, n, ev);
	if (h->framing == HTTP_FRAME_LENGTH && h->remaining == 0) {
		h->phase = PH_DONE;
		*ev = HTTP_EV_DONE;
		return 0;
	}
	if (n == 0) {
		*ev = HTTP_EV_MORE;
		return 0;
	}
	h->data = p;
	h->len = n;
	if (h->framing == HTTP_FRAME_LENGTH && h->remaining < n)
		h->len = (size_t)h->remaining;
	if (h->framing == HTTP_FRAME_LENGTH)
		h->remaining -= h->len;
	*ev = HTTP_EV_DATA;
	return h->len;
}

const char *
http_header(const struct http_parser *h, const char *name)
{
	for (int i = 0; i < h->nfields; i++)
		if (strcasecmp(h->hdr + h->field[i][0], name) == 0)
			return h->hdr + h->field[i][1];
	return NULL;
}

int
http_body_begin(struct http_parser *h, int no_body)
{
	h->phase = PH_BODY;
	if (no_body) {
		h->framing = HTTP_FRAME_NONE;
		h->phase = PH_DONE;
		return 0;
	}
	if (h->other_coding) {
		h->phase = PH_ERROR;
		h->error = "unsupported Transfer-Encoding";
		return -1;
	}
	if (h->chunked) {
		h->framing = HTTP_FRAME_CHUNKED;
		h->chunk_state = CK_SIZE;
		h->chunk_digits = 0;
		h->remaining = 0;
	} else if (h->content_length >= 0) {
		h->framing = HTTP_FRAME_LENGTH;
		h->remaining = (uint64_t)h->content_length;
		if (h->remaining == 0)
			h->phase = PH_DONE;
	} else {
		h->framing = HTTP_FRAME_CLOSE;
	}
	return 0;
}

enum http_ev
http_eof(struct http_parser *h)
{
	if (h->phase == PH_DONE || (h->phase == PH_BODY && h->framing == HTTP_FRAME_CLOSE)) {
		h->phase = PH_DONE;
		return HTTP_EV_DONE;
	}
	h->error = h->phase == PH_HEAD ? "truncated header" : "truncated body";
	h->phase = PH_ERROR;
	return HTTP_EV_ERROR;
}

/* ---- Retry-After (RFC 9110 §10.2.3) ---- */

static int
month_index(const char *s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months + 3 * i, 3) == 0)
			return i + 1;
	return 0;
}

/* hh:mm:ss */
static int
clock_time(const char **p, int *hh, int *mm, int *ss)
{
	return scan_digits(p, 2, hh) < 0 || scan_lit(p, ":") < 0 || scan_digits(p, 2, mm) < 0 ||
	    scan_lit(p, ":") < 0 || scan_digits(p, 2, ss) < 0 ? -1 : 0;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850 "Sunday,
 * 06-Nov-94 08:49:37 GMT" (two-digit year) or asctime "Sun Nov  6
 * 08:49:37 1994", the whole of `s` (trailing blanks allowed). */
static int
http_date(const char *s, char wd[16], char mon[4], char tz[4], int *d, int *y,
    int *hh, int *mm, int *ss)
{
	const char *p = s;

	if (scan_alpha(&p, wd, 16) < 0)
		return -1;
	if (scan_lit(&p, ", ") == 0) {
		const char *q = p;
		if (scan_digits(&q, 2, d) == 0 && scan_lit(&q, " ") == 0 &&
		    scan_alpha(&q, mon, 4) == 0 && scan_lit(&q, " ") == 0 &&
		    scan_digits(&q, 4, y) == 0 && scan_lit(&q, " ") == 0 &&
		    clock_time(&q, hh, mm, ss) == 0 && scan_lit(&q, " ") == 0 &&
		    scan_alpha(&q, tz, 4) == 0) {
			p = q;
		} else if (scan_digits(&p, 2, d) == 0 && scan_lit(&p, "-") == 0 &&
		    scan_alpha(&p, mon, 4) == 0 && scan_lit(&p, "-") == 0 &&
		    scan_digits(&p, 2, y) == 0 && scan_lit(&p, " ") == 0 &&
		    clock_time(&p, hh, mm, ss) == 0 && scan_lit(&p, " ") == 0 &&
		    scan_alpha(&p, tz, 4) == 0) {
			*y += *y < 70 ? 2000 : 1900;
		} else {
			return -1;
		}
	} else {
		if (scan_lit(&p, " ") < 0 || scan_alpha(&p, mon, 4) < 0 || scan_lit(&p, " ") < 0)
			return -1;
		scan_blank(&p);         /* "Nov  6": a day is space-padded */
		if (scan_digits(&p, 2, d) < 0 || scan_lit(&p, " ") < 0 ||
		    clock_time(&p, hh, mm, ss) < 0 || scan_lit(&p, " ") < 0 ||
		    scan_digits(&p, 4, y) < 0)
			return -1;
		memcpy(tz, "GMT", 4);
	}
	scan_blank(&p);
	return *p == '\0' && strcmp(tz, "GMT") == 0 ? 0 : -1;
}

long long
http_retry_after(const char *v, time_t now)
{
	char mon[4], wd[16], tz[4];
	int d, y, hh, mm, ss, m;
	long long t;
	const char *p = v;

	while (*p == ' ' || *p == '\t')
		p++;
	if (isdigit((unsigned char)*p)) {
		long long s = 0;

		while (isdigit((unsigned char)*p)) {
			if (s < 1000000000LL)
				s = s * 10 + (*p - '0');
			p++;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			return -1;
		return s > 1000000000LL ? 1000000000LL : s;
	}
	/* the three forms of RFC 9110 §5.6.7 */
	if (http_date(p, wd, mon, tz, &d, &y, &hh, &mm, &ss) < 0)
		return -1;
	m = month_index(mon);
	if (m == 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1970)
		return -1;
	t = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400 +
	    hh * 3600 + mm * 60 + ss;
	return t > (long long)now ? t - (long long)now : 0;
}
