/* jsonw.c -- see jsonw.h. */
#include "core/base/jsonw.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void
jsonw_init(struct jsonw *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
	w->depth = 0;
	w->first[0] = 1;
	w->after_key = 0;
	if (cap > 0)
		buf[0] = '\0';
}

static void
put(struct jsonw *w, const char *s, size_t n)
{
	if (w->overflow)
		return;
	/* keep one byte for the terminating NUL */
	if (w->cap == 0 || n > w->cap - 1 - w->len) {
		w->overflow = 1;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void
putc_(struct jsonw *w, char c)
{
	put(w, &c, 1);
}

/* Comma before a value or key, unless it directly follows a key. */
static void
sep(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (!w->first[w->depth])
		putc_(w, ',');
	w->first[w->depth] = 0;
}

static void
open_(struct jsonw *w, char c)
{
	sep(w);
	putc_(w, c);
	if (w->depth + 1 < JSONW_MAX_DEPTH) {
		w->depth++;
		w->first[w->depth] = 1;
	} else {
		w->overflow = 1;
	}
}

static void
close_(struct jsonw *w, char c)
{
	if (w->depth > 0)
		w->depth--;
	putc_(w, c);
}

void jsonw_obj_begin(struct jsonw *w) { open_(w, '{'); }
void jsonw_obj_end(struct jsonw *w) { close_(w, '}'); }
void jsonw_arr_begin(struct jsonw *w) { open_(w, '['); }
void jsonw_arr_end(struct jsonw *w) { close_(w, ']'); }

/* Length of the well-formed UTF-8 sequence at `s` (RFC 3629 §4: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is
 * none there. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
jsonw_utf8_ok(const char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k)
		if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
			return 0;
	return 1;
}

static void
put_escaped(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	putc_(w, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t elen = 2;

		if (c >= 0x80) {
			size_t k = utf8_seq((const unsigned char *)s + i, n - i);

			if (k > 0) {
				i += k - 1;     /* well-formed: copied as it is */
				continue;
			}
			/* not UTF-8: U+FFFD REPLACEMENT CHARACTER (RFC 8259 §8.1) */
			put(w, s + run, i - run);
			run = i + 1;
			put(w, "\\ufffd", 6);
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(w, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		put(w, esc, elen);
	}
	put(w, s + run, n - run);
	putc_(w, '"');
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	sep(w);
	put_escaped(w, key, strlen(key));
	putc_(w, ':');
	w->after_key = 1;
}

void
jsonw_strn(struct jsonw *w, const char *s, size_t n)
{
	sep(w);
	put_escaped(w, s, n);
}

void
jsonw_str(struct jsonw *w, const char *s)
{
	jsonw_strn(w, s, strlen(s));
}

void
jsonw_int(struct jsonw *w, long long v)
{
	char num[32];
	int n = fmt_n(num, sizeof num, "%lld", v);

	sep(w);
	put(w, num, (size_t)n);
}

void
jsonw_bool(struct jsonw *w, int v)
{
	sep(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void
jsonw_null(struct jsonw *w)
{
	sep(w);
	put(w, "null", 4);
}

void
jsonw_raw(struct jsonw *w, const char *raw, size_t n)
{
	sep(w);
	put(w, raw, n);
}

void jsonw_kstr(struct jsonw *w, const char *k, const char *s) { jsonw_key(w, k); jsonw_str(w, s); }
void jsonw_kint(struct jsonw *w, const char *k, long long v) { jsonw_key(w, k); jsonw_int(w, v); }
void jsonw_kbool(struct jsonw *w, const char *k, int v) { jsonw_key(w, k); jsonw_bool(w, v); }

int
jsonw_finish(struct jsonw *w)
{
	if (w->cap > 0)
		w->buf[w->len < w->cap ? w->len : w->cap - 1] = '\0';
	if (w->overflow) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

void
jsonw_ktime(struct jsonw *w, const char *key, int64_t ms)
{
	char t[32];

	if (ms <= 0)
		return;
	iso8601_ms(ms, t);
	jsonw_kstr(w, key, t);
}
