/*
 * fmt.h -- bounded formatting of the printf subset appd uses, so that the
 * shipped binary does not link the C library's printf engine (its
 * floating-point and wide-character conversions are most of its size and
 * appd never needs them).
 *
 * Conversions: d i u x X o c s p %, with the flags '-' and '0', a field
 * width (digits or *), a precision (.digits or .*: the maximum bytes of a
 * %s, the minimum digits of an integer) and the length modifiers hh h l
 * ll z j t.  Anything else (%f, %n, %ls, positional arguments) is not
 * supported: the compiler checks every call against printf's rules
 * (format attribute), and an unsupported conversion is copied out as is.
 * Behaviour otherwise as C11 7.21.6.1 for these conversions.
 */
#ifndef APPD_FMT_H
#define APPD_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Like vsnprintf(3): writes at most `cap` bytes including the NUL (none
 * when cap is 0) and returns the length the whole output has, so a
 * result >= cap means it was cut. */
int fmt_v(char *buf, size_t cap, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
int fmt_n(char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Format into a 1 KiB buffer (cut beyond) and write it all to `fd`
 * (EINTR retried).  0, or -1 with errno. */
int fmt_fd(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
