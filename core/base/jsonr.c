/* jsonr.c -- see jsonr.h.  Also the one place jsmn's functions are defined. */
#define JSMN_PARENT_LINKS
#define JSMN_STRICT
#include <jsmn.h>

#include "core/base/jsonr.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* jsmn is lenient about structure even with JSMN_STRICT: it accepts a
 * member name without ':' and a value ({"a","b":1}) and a ':' inside an
 * array (["a":1]).  Everything else here walks objects as name, value,
 * name, value, so refuse any token layout other than that: every token
 * closed, every member of an object a string with exactly one value,
 * every string or primitive elsewhere without children.  fuzz_json found
 * the first form reading past the text in jsonr_dup_key. */
static int
well_formed(const jsmntok_t *tok, int n)
{
	for (int t = 1; t < n; t++) {
		int p = tok[t].parent;

		if (tok[t].start < 0 || tok[t].end < tok[t].start || p < 0 || p >= t)
			return 0;
		if (tok[p].type == JSMN_OBJECT) {
			if (tok[t].type != JSMN_STRING || tok[t].size != 1)
				return 0;
		} else if ((tok[t].type == JSMN_STRING || tok[t].type == JSMN_PRIMITIVE) &&
		    tok[t].size != 0) {
			return 0;
		}
	}
	return tok[0].end >= 0;
}

int
jsonr_parse(struct jsonr *r, const char *js, size_t len, jsmntok_t *tok, unsigned cap)
{
	jsmn_parser p;
	int n;

	jsmn_init(&p);
	n = jsmn_parse(&p, js, len, tok, cap);
	if (n == JSMN_ERROR_NOMEM) {
		errno = ENOMEM;
		return -1;
	}
	if (n < 1 || tok[0].type != JSMN_OBJECT) {
		errno = EINVAL;
		return -1;
	}
	/* trailing garbage after the object */
	for (size_t k = (size_t)tok[0].end; k < len; k++) {
		char c = js[k];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
			errno = EINVAL;
			return -1;
		}
	}
	if (!well_formed(tok, n)) {
		errno = EINVAL;
		return -1;
	}
	r->js = js;
	r->len = len;
	r->tok = tok;
	r->ntok = n;
	return 0;
}

static int
same_name(const struct jsonr *r, int a, int b)
{
	const jsmntok_t *x = &r->tok[a], *y = &r->tok[b];

	return x->end - x->start == y->end - y->start &&
	    memcmp(r->js + x->start, r->js + y->start, (size_t)(x->end - x->start)) == 0;
}

int
jsonr_dup_key(const struct jsonr *r, char *key, size_t cap)
{
	for (int obj = 0; obj < r->ntok; obj++) {
		int i = obj + 1;

		if (r->tok[obj].type != JSMN_OBJECT)
			continue;
		for (int k = 0; k < r->tok[obj].size; k++, i = jsonr_skip(r, i + 1)) {
			int j = obj + 1;

			for (int m = 0; m < k; m++, j = jsonr_skip(r, j + 1)) {
				if (!same_name(r, i, j))
					continue;
				if (cap > 0) {
					size_t n = (size_t)(r->tok[i].end - r->tok[i].start);
					if (n >= cap)
						n = cap - 1;
					memcpy(key, r->js + r->tok[i].start, n);
					key[n] = '\0';
				}
				return 1;
			}
		}
	}
	return 0;
}

int
jsonr_skip(const struct jsonr *r, int i)
{
	int end = r->tok[i].end;

	i++;
	while (i < r->ntok && r->tok[i].start < end)
		i++;
	return i;
}

static int
tok_eq(const struct jsonr *r, int i, const char *s, size_t n)
{
	const jsmntok_t *t = &r->tok[i];

	return t->type == JSMN_STRING && (size_t)(t->end - t->start) == n &&
	    memcmp(r->js + t->start, s, n) == 0;
}

static int
get_n(const struct jsonr *r, int obj, const char *key, size_t klen)
{
	int i, k;

	if (obj < 0 || obj >= r->ntok || r->tok[obj].type != JSMN_OBJECT)
		return -1;
	i = obj + 1;
	for (k = 0; k < r->tok[obj].size && i < r->ntok; k++) {
		/* keys are plain ASCII for us; escaped keys never match */
		if (tok_eq(r, i, key, klen))
			return i + 1;
		i = jsonr_skip(r, i + 1);
	}
	return -1;
}

int
jsonr_get(const struct jsonr *r, int obj, const char *key)
{
	return get_n(r, obj, key, strlen(key));
}

int
jsonr_path(const struct jsonr *r, const char *path)
{
	int i = 0;

	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		i = get_n(r, i, path, n);
		if (i < 0 || dot == NULL)
			return i;
		path = dot + 1;
	}
}

int
jsonr_elem(const struct jsonr *r, int arr, int n)
{
	int i, k;

	if (arr < 0 || r->tok[arr].type != JSMN_ARRAY || n >= r->tok[arr].size)
		return -1;
	i = arr + 1;
	for (k = 0; k < n; k++)
		i = jsonr_skip(r, i);
	return i;
}

int
jsonr_type(const struct jsonr *r, int i)
{
	if (i < 0 || i >= r->ntok)
		return -1;
	return (int)r->tok[i].type;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static int
hex4(const char *s, const char *end, uint32_t *out)
{
	uint32_t v = 0;
	int k;

	if (end - s < 4)
		return -1;
	for (k = 0; k < 4; k++) {
		int h = hexval(s[k]);
		if (h < 0)
			return -1;
		v = v << 4 | (uint32_t)h;
	}
	*out = v;
	return 0;
}

int
jsonr_str(const struct jsonr *r, int i, char *out, size_t cap)
{
	const char *s, *end;
	size_t o = 0;

	if (i < 0 || i >= r->ntok || r->tok[i].type != JSMN_STRING || cap == 0)
		return -1;
	s = r->js + r->tok[i].start;
	end = r->js + r->tok[i].end;
	while (s < end) {
		char buf[4];
		size_t n = 1;

		if (*s != '\\') {
			buf[0] = *s++;
		} else {
			s++;
			if (s >= end)
				return -1;
			switch (*s++) {
			case '"': buf[0] = '"'; break;
			case '\\': buf[0] = '\\'; break;
			case '/': buf[0] = '/'; break;
			case 'b': buf[0] = '\b'; break;
			case 'f': buf[0] = '\f'; break;
			case 'n': buf[0] = '\n'; break;
			case 'r': buf[0] = '\r'; break;
			case 't': buf[0] = '\t'; break;
			case 'u': {
				uint32_t cp, lo;

				if (hex4(s, end, &cp) < 0)
					return -1;
				s += 4;
				if (cp >= 0xd800 && cp < 0xdc00 && end - s >= 6 &&
				    s[0] == '\\' && s[1] == 'u' &&
				    hex4(s + 2, end, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
				if (cp == 0)
					return -1;   /* no NULs in our strings */
				if (cp < 0x80) {
					buf[0] = (char)cp;
				} else if (cp < 0x800) {
					buf[0] = (char)(0xc0 | cp >> 6);
					buf[1] = (char)(0x80 | (cp & 0x3f));
					n = 2;
				} else if (cp < 0x10000) {
					buf[0] = (char)(0xe0 | cp >> 12);
					buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
					buf[2] = (char)(0x80 | (cp & 0x3f));
					n = 3;
				} else {
					buf[0] = (char)(0xf0 | cp >> 18);
					buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
					buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
					buf[3] = (char)(0x80 | (cp & 0x3f));
					n = 4;
				}
				break;
			}
			default:
				return -1;
			}
		}
		if (o + n >= cap)
			return -1;
		memcpy(out + o, buf, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

int
jsonr_int(const struct jsonr *r, int i, long long *out)
{
	char buf[32], *end;
	int n;
	long long v;

	if (i < 0 || i >= r->ntok || r->tok[i].type != JSMN_PRIMITIVE)
		return -1;
	n = r->tok[i].end - r->tok[i].start;
	if (n <= 0 || n >= (int)sizeof buf)
		return -1;
	memcpy(buf, r->js + r->tok[i].start, (size_t)n);
	buf[n] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int
jsonr_bool(const struct jsonr *r, int i, int *out)
{
	if (i < 0 || i >= r->ntok || r->tok[i].type != JSMN_PRIMITIVE)
		return -1;
	if (r->js[r->tok[i].start] == 't') {
		*out = 1;
		return 0;
	}
	if (r->js[r->tok[i].start] == 'f') {
		*out = 0;
		return 0;
	}
	return -1;
}

int
jsonr_is_null(const struct jsonr *r, int i)
{
	return i >= 0 && i < r->ntok && r->tok[i].type == JSMN_PRIMITIVE &&
	    r->js[r->tok[i].start] == 'n';
}

/* ---- jsonr_set: rewrite one member, keep the rest verbatim ---- */

struct outbuf {
	char *p;
	size_t cap, len;
	int overflow;
};

static void
out_put(struct outbuf *o, const char *s, size_t n)
{
	if (o->overflow || n > o->cap - 1 - o->len) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void
out_key(struct outbuf *o, const char *k, size_t n)
{
	out_put(o, "\"", 1);
	out_put(o, k, n);
	out_put(o, "\":", 2);
}

/* Emit an object holding only `path` = value (for missing parents). */
static void
emit_fresh(struct outbuf *o, const char *path, const char *value)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);

	out_put(o, "{", 1);
	out_key(o, path, n);
	if (dot)
		emit_fresh(o, dot + 1, value);
	else
		out_put(o, value, strlen(value));
	out_put(o, "}", 1);
}

static void
emit_set(const struct jsonr *r, int obj, struct outbuf *o, const char *path, const char *value)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);
	int i = obj + 1, k, first = 1, found = 0;

	out_put(o, "{", 1);
	for (k = 0; k < r->tok[obj].size; k++) {
		int v = i + 1, next = jsonr_skip(r, v);

		if (tok_eq(r, i, path, n)) {
			found = 1;
			if (dot == NULL && value == NULL) {
				i = next;
				continue;
			}
			if (!first)
				out_put(o, ",", 1);
			first = 0;
			out_key(o, path, n);
			if (dot == NULL)
				out_put(o, value, strlen(value));
			else if (r->tok[v].type == JSMN_OBJECT)
				emit_set(r, v, o, dot + 1, value);
			else if (value != NULL)
				emit_fresh(o, dot + 1, value);
			else
				out_put(o, r->js + r->tok[v].start,
				    (size_t)(r->tok[v].end - r->tok[v].start));
		} else {
			if (!first)
				out_put(o, ",", 1);
			first = 0;
			/* key token start excludes the quotes */
			out_put(o, r->js + r->tok[i].start - 1,
			    (size_t)(r->tok[v].end - r->tok[i].start + 1) +
			    (r->tok[v].type == JSMN_STRING ? 1 : 0));
		}
		i = next;
	}
	if (!found && value != NULL) {
		if (!first)
			out_put(o, ",", 1);
		out_key(o, path, n);
		if (dot)
			emit_fresh(o, dot + 1, value);
		else
			out_put(o, value, strlen(value));
	}
	out_put(o, "}", 1);
}

int
jsonr_set(const char *js, size_t len, const char *path, const char *value,
    char *out, size_t cap)
{
	jsmntok_t tok[1024];
	struct jsonr r;
	struct outbuf o = { out, cap, 0, 0 };

	if (cap == 0) {
		errno = ENOSPC;
		return -1;
	}
	if (len == 0) {
		js = "{}";
		len = 2;
	}
	if (jsonr_parse(&r, js, len, tok, sizeof tok / sizeof tok[0]) < 0)
		return -1;
	emit_set(&r, 0, &o, path, value);
	if (o.overflow) {
		errno = ENOSPC;
		return -1;
	}
	out[o.len] = '\0';
	return 0;
}

int64_t
jsonr_time(const struct jsonr *r, int obj, const char *key)
{
	char t[64];
	int64_t v;
	int i = jsonr_get(r, obj, key);

	if (i < 0 || jsonr_str(r, i, t, sizeof t) < 0)
		return 0;
	v = iso8601_parse(t);
	return v > 0 ? v : 0;
}
