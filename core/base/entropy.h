/*
 * entropy.h -- random bytes from the kernel (getentropy(3): Linux >= 3.17
 * via getrandom(2), FreeBSD >= 12, macOS >= 10.12), for keys, nonces,
 * jitter and machine-id fallbacks.  No userspace generator, no state.
 */
#ifndef APPD_ENTROPY_H
#define APPD_ENTROPY_H

#include <stddef.h>

#include "core/base/err.h"

/* Fill `buf` with `n` random bytes, asking the kernel at most 256 bytes
 * at a time (getentropy's limit).  0, or -1 with ERR_IO in `e` when the
 * kernel refuses (errno kept). */
int entropy_get(void *buf, size_t n, struct err *e);

#endif
