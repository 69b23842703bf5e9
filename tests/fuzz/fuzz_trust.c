/*
 * fuzz_trust.c -- the PEM trust-anchor loader (core/update/trust.c over
 * BearSSL's PEM and X.509 decoders): trust_add_pem on a CA bundle's
 * bytes, as the updater reads updater.caFile or the system bundle.
 * Checks that the anchor count and arena use stay within the store and
 * that every anchor's DN and key point into the store's own arena.
 */
#include "tests/fuzz/fuzz.h"

#include "core/update/trust.h"

static int
inside(const struct trust_store *ts, const void *p, size_t n)
{
	const unsigned char *b = p;

	return n == 0 || (b >= ts->arena && b + n <= ts->arena + ts->used);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct trust_store ts;
	struct err e;
	int n;

	trust_reset(&ts);
	err_clear(&e);
	n = trust_add_pem(&ts, data, size, "fuzz", &e);
	if (n >= 0 && (size_t)n != ts.n)
		fuzz_fail("returned %d anchors, store has %zu", n, ts.n);
	if (ts.n > TRUST_MAX_ANCHORS || ts.used > TRUST_ARENA_SIZE)
		fuzz_fail("store overflow: n=%zu used=%zu", ts.n, ts.used);
	for (size_t i = 0; i < ts.n; i++) {
		const br_x509_trust_anchor *ta = &ts.ta[i];

		if (!inside(&ts, ta->dn.data, ta->dn.len))
			fuzz_fail("anchor %zu DN outside the arena", i);
		if (ta->pkey.key_type == BR_KEYTYPE_RSA) {
			if (!inside(&ts, ta->pkey.key.rsa.n, ta->pkey.key.rsa.nlen) ||
			    !inside(&ts, ta->pkey.key.rsa.e, ta->pkey.key.rsa.elen))
				fuzz_fail("anchor %zu RSA key outside the arena", i);
		} else if (ta->pkey.key_type == BR_KEYTYPE_EC) {
			if (!inside(&ts, ta->pkey.key.ec.q, ta->pkey.key.ec.qlen))
				fuzz_fail("anchor %zu EC key outside the arena", i);
		} else {
			fuzz_fail("anchor %zu of key type %d", i, ta->pkey.key_type);
		}
	}
	return 0;
}
