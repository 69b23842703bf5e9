/* entropy.c -- see entropy.h. */
#include "core/base/entropy.h"

#include "platform/compat.h"

int
entropy_get(void *buf, size_t n, struct err *e)
{
	unsigned char *p = buf;

	while (n > 0) {
		size_t k = n > 256 ? 256 : n;

		if (getentropy(p, k) < 0)
			return err_sys(e, ERR_IO, "cannot get random bytes from the kernel");
		p += k;
		n -= k;
	}
	return 0;
}
