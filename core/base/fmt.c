/* fmt.c -- see fmt.h. */
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

struct out {
	char *buf;
	size_t cap, len;     /* len counts everything, written or not */
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void
pad(struct out *o, char c, int n)
{
	for (; n > 0; n--)
		put(o, &c, 1);
}

/* One integer conversion: `neg` and the magnitude `v` in `base`. */
static void
put_int(struct out *o, uintmax_t v, int neg, unsigned base, int upper, int width,
    int prec, int left, int zero)
{
	char digits[3 * sizeof(uintmax_t) + 2];
	const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int n = 0, len;

	while (v != 0) {
		digits[sizeof digits - 1 - n++] = set[v % base];
		v /= base;
	}
	if (prec < 0)
		prec = 1;
	else
		zero = 0;       /* a precision overrides the 0 flag (C11) */
	len = (n > prec ? n : prec) + neg;
	if (!left && !zero)
		pad(o, ' ', width - len);
	if (neg)
		put(o, "-", 1);
	if (!left && zero)
		pad(o, '0', width - len);
	pad(o, '0', prec - n);
	put(o, digits + sizeof digits - n, (size_t)n);
	if (left)
		pad(o, ' ', width - len);
}

/* One pass over the format with one switch over the conversions: split
 * up, the parsing state would have to travel between the pieces. */
int
fmt_v(char *buf, size_t cap, const char *fmt, va_list ap)
{
	struct out o = { buf, cap ? cap - 1 : 0, 0 };
	const char *p;

	for (p = fmt; *p; p++) {
		int left = 0, zero = 0, width = 0, prec = -1, lng = 0, neg = 0;
		uintmax_t u;
		intmax_t v;

		if (*p != '%') {
			const char *q = strchr(p, '%');
			size_t n = q ? (size_t)(q - p) : strlen(p);
			put(&o, p, n);
			p += n - 1;
			continue;
		}
		const char *start = p++;
		for (;; p++) {
			if (*p == '-')
				left = 1;
			else if (*p == '0')
				zero = 1;
			else
				break;
		}
		if (*p == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				left = 1;
				width = -width;
			}
			p++;
		} else {
			while (*p >= '0' && *p <= '9')
				width = width * 10 + (*p++ - '0');
		}
		if (*p == '.') {
			p++;
			if (*p == '*') {
				prec = va_arg(ap, int);
				p++;
			} else {
				prec = 0;
				while (*p >= '0' && *p <= '9')
					prec = prec * 10 + (*p++ - '0');
			}
		}
		/* length: 0 int, 1 long, 2 long long, 3 size_t, 4 intmax_t, 5 ptrdiff_t */
		if (*p == 'h') {
			p += p[1] == 'h' ? 2 : 1;
		} else if (*p == 'l') {
			lng = p[1] == 'l' ? 2 : 1;
			p += lng;
		} else if (*p == 'z' || *p == 'j' || *p == 't') {
			lng = *p == 'z' ? 3 : *p == 'j' ? 4 : 5;
			p++;
		}
		switch (*p) {
		case 'd':
		case 'i':
			v = lng == 1 ? va_arg(ap, long) : lng == 2 ? va_arg(ap, long long) :
			    lng == 3 ? (intmax_t)va_arg(ap, size_t) : lng == 4 ? va_arg(ap, intmax_t) :
			    lng == 5 ? va_arg(ap, ptrdiff_t) : va_arg(ap, int);
			neg = v < 0;
			u = neg ? (uintmax_t)0 - (uintmax_t)v : (uintmax_t)v;
			put_int(&o, u, neg, 10, 0, width, prec, left, zero);
			break;
		case 'u':
		case 'x':
		case 'X':
		case 'o':
			u = lng == 1 ? va_arg(ap, unsigned long) : lng == 2 ? va_arg(ap, unsigned long long) :
			    lng == 3 ? va_arg(ap, size_t) : lng == 4 ? va_arg(ap, uintmax_t) :
			    lng == 5 ? (uintmax_t)va_arg(ap, ptrdiff_t) : va_arg(ap, unsigned);
			put_int(&o, u, 0, *p == 'o' ? 8 : *p == 'u' ? 10 : 16, *p == 'X', width, prec,
			    left, zero);
			break;
		case 'p':
			put(&o, "0x", 2);
			put_int(&o, (uintptr_t)va_arg(ap, void *), 0, 16, 0, width - 2, prec, left, zero);
			break;
		case 'c': {
			char c = (char)va_arg(ap, int);
			if (!left)
				pad(&o, ' ', width - 1);
			put(&o, &c, 1);
			if (left)
				pad(&o, ' ', width - 1);
			break;
		}
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t n;
			if (s == NULL)
				s = "(null)";
			n = prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s);
			if (!left)
				pad(&o, ' ', width - (int)n);
			put(&o, s, n);
			if (left)
				pad(&o, ' ', width - (int)n);
			break;
		}
		case '%':
			put(&o, "%", 1);
			break;
		default:
			/* unsupported: copy the directive as it stands */
			put(&o, start, (size_t)(p - start) + (*p != '\0'));
			if (*p == '\0')
				p--;
			break;
		}
	}
	if (cap > 0)
		buf[o.len < o.cap ? o.len : o.cap] = '\0';
	return o.len > INT32_MAX ? INT32_MAX : (int)o.len;
}

int
fmt_n(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_v(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}

int
fmt_fd(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = fmt_v(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return fd_write_all(fd, buf, (size_t)k < sizeof buf ? (size_t)k : sizeof buf - 1);
}
