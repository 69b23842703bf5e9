/*
 * fuzz.h -- what the libFuzzer targets in tests/fuzz/ share.
 *
 * Each fuzz_<parser>.c defines LLVMFuzzerTestOneInput(data, size) (the
 * libFuzzer entry point; https://llvm.org/docs/LibFuzzer.html) and feeds
 * the bytes to one parser of untrusted or damaged input exactly as appd
 * reads them.  A target never asserts what the parser decides; it only
 * checks invariants the callers rely on (a result that claims success is
 * complete and NUL-terminated, lengths stay in bounds) and lets ASan and
 * UBSan catch the rest.  fuzz_fail() aborts, which libFuzzer reports as a
 * crash with the input saved.
 */
#ifndef APPD_FUZZ_H
#define APPD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_fail(...) do { \
	fprintf(stderr, "fuzz invariant broken at %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); abort(); \
} while (0)

/* 1 when `s` is NUL-terminated within `cap` bytes. */
static inline int
fuzz_terminated(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* Split the input at the first occurrence of the 4-byte separator
 * "\n--\n": *a gets the part before (all of it when there is none), *b
 * the part after (empty when none).  Lets one input carry two fields
 * (a document and its signature, a URL and a Location) while staying
 * readable in the seed corpus. */
static inline void
fuzz_split(const uint8_t *d, size_t n, const uint8_t **a, size_t *an,
    const uint8_t **b, size_t *bn)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(d + i, "\n--\n", 4) == 0) {
			*a = d, *an = i, *b = d + i + 4, *bn = n - i - 4;
			return;
		}
	*a = d, *an = n, *b = d + n, *bn = 0;
}

#endif
