/*
 * fuzz_url.c -- URL handling of the updater's HTTPS client
 * (core/net/https.c): https_url_split on a URL from settings or a
 * manifest, and https_resolve_location on a redirect's Location against
 * it, then the split of the URL that redirect leads to.
 *
 * Input: the URL, then "\n--\n" and the Location (absent: only the
 * split).  Checks: a split host is non-empty, lower-case, within
 * DNSHELPER_HOST_MAX and made only of host characters (or an IPv6
 * literal's); the port is 1..65535; the path offset points at '/' or '?'
 * inside the URL; a resolved Location fits its buffer and carries no
 * fragment.
 */
#include "tests/fuzz/fuzz.h"

#include <ctype.h>

#include "core/net/dnshelper.h"
#include "core/net/https.h"

static void
check_split(const char *url)
{
	char host[DNSHELPER_HOST_MAX + 1];
	uint16_t port = 0;
	long off = -2;
	const char *why = NULL;
	size_t hl;

	if (https_url_split(url, host, &port, &off, &why) < 0) {
		if (why == NULL)
			fuzz_fail("refused without a reason");
		return;
	}
	hl = strlen(host);
	if (hl == 0 || hl > DNSHELPER_HOST_MAX)
		fuzz_fail("host of %zu bytes", hl);
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)host[i];
		if (isupper(c) || !(isalnum(c) || strchr("-._:", c) != NULL))
			fuzz_fail("host byte 0x%02x", c);
	}
	if (port == 0)
		fuzz_fail("port 0");
	if (off != -1 && (off < 8 || (size_t)off >= strlen(url) ||
	    (url[off] != '/' && url[off] != '?')))
		fuzz_fail("path offset %ld", off);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char url[HTTPS_URL_MAX + 64], loc[HTTPS_URL_MAX + 64];
	static char next[HTTPS_URL_MAX + 1];
	const uint8_t *a, *b;
	size_t an, bn;
	enum https_fail kind;
	const char *why = NULL;

	fuzz_split(data, size, &a, &an, &b, &bn);
	if (an >= sizeof url || bn >= sizeof loc)
		return 0;
	/* C strings, as they come out of JSON and header parsing */
	memcpy(url, a, an);
	url[an] = '\0';
	memcpy(loc, b, bn);
	loc[bn] = '\0';
	check_split(url);
	if (bn == 0 && b == data + size)
		return 0;
	if (https_resolve_location(url, loc, next, sizeof next, &kind, &why) < 0) {
		if (why == NULL)
			fuzz_fail("Location refused without a reason");
		return 0;
	}
	if (strlen(next) >= sizeof next || strchr(next, '#') != NULL)
		fuzz_fail("resolved URL keeps a fragment or overflows");
	check_split(next);
	return 0;
}
