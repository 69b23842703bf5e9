/* scan.c -- see scan.h. */
#include "core/base/scan.h"

#include <string.h>

int
scan_lit(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

void
scan_blank(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

int
scan_ll(const char **p, long long *v)
{
	const char *s = *p;
	int neg = *s == '-', n = 0;
	long long x = 0;

	s += neg;
	while (*s >= '0' && *s <= '9') {
		if (++n > 18)
			return -1;
		x = x * 10 + (*s++ - '0');
	}
	if (n == 0)
		return -1;
	*v = neg ? -x : x;
	*p = s;
	return 0;
}

int
scan_digits(const char **p, int max, int *v)
{
	const char *s = *p;
	int n = 0, x = 0;

	while (n < max && *s >= '0' && *s <= '9') {
		x = x * 10 + (*s++ - '0');
		n++;
	}
	if (n == 0)
		return -1;
	*v = x;
	*p = s;
	return 0;
}

static int
run(const char **p, char *out, size_t cap, int alpha)
{
	const char *s = *p;
	size_t n = 0;

	for (;; n++) {
		char c = s[n];
		int ok = alpha ? (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') :
		    c != '\0' && c != ' ' && c != '\t' && c != '\n';
		if (!ok)
			break;
	}
	if (n == 0 || n >= cap)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	*p = s + n;
	return 0;
}

int
scan_word(const char **p, char *out, size_t cap)
{
	return run(p, out, cap, 0);
}

int
scan_alpha(const char **p, char *out, size_t cap)
{
	return run(p, out, cap, 1);
}
