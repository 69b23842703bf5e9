/*
 * scan.h -- cursor-style parsing of the few fixed text formats appd reads
 * (its own ready line and lock notes, handover fds, ISO-8601 and HTTP
 * dates), instead of the C library's scanf engine.  Each call consumes
 * what it matched from `*p` and returns 0, or returns -1 and leaves `*p`
 * as it was.  No allocation, no locale.
 */
#ifndef APPD_SCAN_H
#define APPD_SCAN_H

#include <stddef.h>

/* Exactly the bytes of `lit`. */
int scan_lit(const char **p, const char *lit);
/* Zero or more spaces or tabs (never fails). */
void scan_blank(const char **p);
/* An optional '-' then 1..19 decimal digits (more is an error). */
int scan_ll(const char **p, long long *v);
/* 1 to `max` decimal digits, no sign. */
int scan_digits(const char **p, int max, int *v);
/* A run of 1 to cap-1 bytes that are not space, tab, newline or NUL,
 * copied NUL-terminated into `out`. */
int scan_word(const char **p, char *out, size_t cap);
/* A run of 1 to cap-1 ASCII letters into `out`. */
int scan_alpha(const char **p, char *out, size_t cap);

#endif
