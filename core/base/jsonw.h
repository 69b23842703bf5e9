/*
 * jsonw.h -- a small JSON writer into a caller-owned buffer.
 *
 * Compact output (no spaces), RFC 8259 string escaping (", \, control
 * characters as \uXXXX or the short forms; bytes >= 0x80 are copied as-is,
 * so UTF-8 passes through).  Commas are inserted automatically from a
 * depth stack.  Overflow is sticky: once the buffer is full `overflow` is
 * set, output stops, and jsonw_finish() returns -1/ENOSPC.
 */
#ifndef APPD_JSONW_H
#define APPD_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX_DEPTH 16

struct jsonw {
	char *buf;
	size_t cap;
	size_t len;
	int overflow;
	int depth;
	int first[JSONW_MAX_DEPTH];   /* no member written yet at this depth */
	int after_key;
};

void jsonw_init(struct jsonw *w, char *buf, size_t cap);
void jsonw_obj_begin(struct jsonw *w);
void jsonw_obj_end(struct jsonw *w);
void jsonw_arr_begin(struct jsonw *w);
void jsonw_arr_end(struct jsonw *w);
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_str(struct jsonw *w, const char *s);
void jsonw_strn(struct jsonw *w, const char *s, size_t n);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_bool(struct jsonw *w, int v);
void jsonw_null(struct jsonw *w);
/* Insert pre-serialized JSON text verbatim as one value. */
void jsonw_raw(struct jsonw *w, const char *raw, size_t n);
/* key + value shorthands */
void jsonw_kstr(struct jsonw *w, const char *key, const char *s);
void jsonw_kint(struct jsonw *w, const char *key, long long v);
void jsonw_kbool(struct jsonw *w, const char *key, int v);
/* "key":"<ISO-8601 UTC>" for wall-clock `ms` since the epoch (fsutil.h
 * iso8601_ms); nothing at all when ms <= 0 (never happened). */
void jsonw_ktime(struct jsonw *w, const char *key, int64_t ms);
/* NUL-terminate; 0, or -1/ENOSPC if anything was dropped. */
int jsonw_finish(struct jsonw *w);

/* 1 when `s` is well-formed UTF-8 (RFC 3629).  jsonw_str writes U+FFFD
 * for each byte that is not part of such a sequence, so its output is
 * always valid JSON text; callers that store text check this first. */
int jsonw_utf8_ok(const char *s);

#endif
