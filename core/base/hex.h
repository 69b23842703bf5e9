/*
 * hex.h -- text encodings of bytes: lowercase hexadecimal (RFC 4648 §8,
 * "base16") and base64 (RFC 4648 §4, with padding).
 * No allocation; the caller sizes every buffer.
 */
#ifndef APPD_HEX_H
#define APPD_HEX_H

#include <stddef.h>

/* Lowercase hex of the `n` bytes at `in` into `out`, which holds 2n+1
 * bytes; always NUL-terminated. */
void hex_encode(const void *in, size_t n, char *out);

/* The value of hex digit `c` (either case), or -1. */
int hex_digit(int c);

/* Decode exactly `hexlen` hex digits (either case) from `hex` into `out`
 * (`cap` bytes).  `*outlen` (may be NULL) gets hexlen/2.  0, or -1 when
 * the length is odd, the result would not fit, or a character is not a
 * hex digit; `out` may then be partly written. */
int hex_decode(const char *hex, size_t hexlen, void *out, size_t cap, size_t *outlen);

/* Base64 of the `n` bytes at `data` into `out`, which holds
 * 4 * ceil(n / 3) + 1 bytes; always NUL-terminated. */
void base64_encode(const void *data, size_t n, char *out);

#endif
