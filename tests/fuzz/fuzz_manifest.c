/*
 * fuzz_manifest.c -- the release manifest (core/update/manifest.c) and its
 * signature file (core/update/sig.c): manifest_verify as the updater calls
 * it on a fetched manifest.json and manifest.json.sig.
 *
 * Input: manifest bytes, then "\n--\n" and the .sig text.  When the .sig
 * part is empty the harness signs the manifest itself with a key made at
 * start-up (BearSSL's RFC 6979 signing is deterministic), so inputs get
 * past the signature to the serial, expiry, version, rollout and
 * artifact rules (for documents manifest_parse accepts); otherwise the given text is parsed and
 * verified as it is (malformed hex, wrong DER, wrong key).  Also checks:
 * a manifest accepted by verify is accepted by manifest_parse too, its
 * strings are terminated and its reason is MR_NONE.
 */
#include "tests/fuzz/fuzz.h"

#include "core/update/manifest.h"
#include "core/update/sig.h"

#define NOW_MS 1767225600000LL                   /* 2026-01-01T00:00:00Z */

static struct sig_privkey sk;
static struct manifest_policy pol;

static void
init(void)
{
	struct err e;

	err_clear(&e);
	if (sig_keygen(&sk, &pol.keys[0], &e) < 0)
		fuzz_fail("keygen: %s", e.msg);
	pol.nkeys = 1;
	pol.serial_hwm = 41;
	pol.installed_version = "1.4.1";
	pol.now_ms = NOW_MS;
	pol.machine_id = "0123456789abcdef0123456789abcdef";
	pol.target = "x86_64-linux";
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	static struct manifest m, m2;
	const uint8_t *doc, *sig;
	size_t dn, sn;
	char text[SIG_HEX_MAX + 2];
	struct err e;
	int rc, parsed;

	if (!ready) {
		init();
		ready = 1;
	}
	fuzz_split(data, size, &doc, &dn, &sig, &sn);
	/* The parser alone first (fast); ECDSA signing and verification
	 * (milliseconds under ASan) only for documents it accepts, or when
	 * the input brings its own .sig text. */
	err_clear(&e);
	parsed = manifest_parse((const char *)doc, dn, pol.target, &m2, &e) == 0;
	if (!parsed && sn == 0)
		return 0;
	err_clear(&e);
	if (sn == 0) {
		unsigned char der[SIG_MAX_LEN];
		size_t dl;

		if (sig_sign(&sk, doc, dn, der, &dl, &e) < 0)
			fuzz_fail("sign: %s", e.msg);
		sig_text_format(der, dl, text);
		sig = (const uint8_t *)text;
		sn = strlen(text);
	}
	rc = manifest_verify((const char *)doc, dn, (const char *)sig, sn, &pol, &m, &e);
	if (rc == 0) {
		if (m.reason != MR_NONE)
			fuzz_fail("accepted with reason %d", (int)m.reason);
		if (!fuzz_terminated(m.name, sizeof m.name) ||
		    !fuzz_terminated(m.version, sizeof m.version) ||
		    !fuzz_terminated(m.server.url, sizeof m.server.url))
			fuzz_fail("accepted manifest strings not terminated");
		if (!m.server.present)
			fuzz_fail("accepted without an artifact for the target");
		if (!parsed)
			fuzz_fail("verify accepted what parse refuses");
	} else if (m.reason == MR_NONE) {
		fuzz_fail("refused without a reason: %s", e.msg);
	}
	return 0;
}
