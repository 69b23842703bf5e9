/*
 * jsonr.h -- reading JSON with jsmn (Debian libjsmn-dev, header only).
 *
 * The caller owns the text and the token array; nothing is allocated.
 * Token indices are ints; -1 means "absent".  Strings are unescaped into
 * caller buffers (\uXXXX to UTF-8, surrogate pairs joined).
 */
#ifndef APPD_JSONR_H
#define APPD_JSONR_H

#include <stddef.h>
#include <stdint.h>

#ifndef JSMN_HEADER
#define JSMN_HEADER
#define JSMN_PARENT_LINKS
#define JSMN_STRICT
#include <jsmn.h>
#undef JSMN_HEADER
#else
#include <jsmn.h>
#endif

struct jsonr {
	const char *js;
	size_t len;
	jsmntok_t *tok;
	int ntok;
};

/* Tokenize `js`; the top level must be one object.  0, or -1 (errno
 * EINVAL for bad JSON, ENOMEM when `cap` tokens are too few). */
int jsonr_parse(struct jsonr *r, const char *js, size_t len, jsmntok_t *tok, unsigned cap);
/* Index of the token after the whole subtree rooted at `i`. */
int jsonr_skip(const struct jsonr *r, int i);
/* Value token of member `key` in object token `obj`, or -1. */
int jsonr_get(const struct jsonr *r, int obj, const char *key);
/* Follow a dotted path ("server.command") from the root object. */
int jsonr_path(const struct jsonr *r, const char *path);
/* Element `n` of array token `arr`, or -1. */
int jsonr_elem(const struct jsonr *r, int arr, int n);
/* 0 on success; -1 when the token is absent or of the wrong type
 * (or the string does not fit `cap` bytes with its NUL). */
int jsonr_str(const struct jsonr *r, int i, char *out, size_t cap);
int jsonr_int(const struct jsonr *r, int i, long long *out);
int jsonr_bool(const struct jsonr *r, int i, int *out);
int jsonr_is_null(const struct jsonr *r, int i);
/* Member `key` of object `obj` as an ISO-8601 time (fsutil.h
 * iso8601_parse): wall-clock ms since the epoch, 0 when absent or bad. */
int64_t jsonr_time(const struct jsonr *r, int obj, const char *key);
int jsonr_type(const struct jsonr *r, int i);   /* JSMN_* or -1 */
/* 1 when some object anywhere in the document has a member name twice
 * (RFC 8259 §4 leaves that to the reader; readers disagree on which one
 * wins, so a signed or saved document with one is refused), with that
 * name copied into `key` (cut to `cap`); 0 when every name is unique. */
int jsonr_dup_key(const struct jsonr *r, char *key, size_t cap);

/*
 * Rewrite the object `js` (len bytes) with the member at dotted `path` set
 * to the raw JSON `value` (NULL: remove it), keeping every other member's
 * text as it was (unknown keys survive).  Missing intermediate objects are
 * created.  Output is NUL-terminated in `out`.  0, or -1/errno (EINVAL bad
 * input, ENOSPC output too small).
 */
int jsonr_set(const char *js, size_t len, const char *path, const char *value,
	      char *out, size_t cap);

#endif
