/*
 * test_manifest.c -- release keys, signatures, manifest policy checks and
 * the streaming artifact check (core/sig.h, core/manifest.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/base/fsutil.h"
#include "core/update/manifest.h"
#include "platform/target.h"
#include "core/update/sig.h"
#include "core/update/machineid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MID "0123456789abcdef0123456789abcdef"   /* bucket 98 for 1.4.2 (python hashlib) */
#define NOW_MS 1767225600000LL                   /* 2026-01-01T00:00:00Z */
#define SHA_A "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" /* "test" */

static struct sig_privkey k1, k2, k3;
static struct sig_pubkey p1, p2, p3;
static char dir[64];

static int
setup(void **state)
{
	struct err e;

	(void)state;
	err_clear(&e);
	if (sig_keygen(&k1, &p1, &e) < 0 || sig_keygen(&k2, &p2, &e) < 0 ||
	    sig_keygen(&k3, &p3, &e) < 0)
		return -1;
	strcpy(dir, "/tmp/appd-manifest-XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A manifest with the given version, serial and rollout; `extra` goes
 * into the artifacts object after x86_64-linux. */
static size_t
make_manifest(char *buf, size_t cap, const char *version, long long serial, int rollout,
	      const char *extra)
{
	int n = snprintf(buf, cap,
	    "{\"schema\":1,\"name\":\"app-server\",\"version\":\"%s\",\"serial\":%lld,"
	    "\"expires\":\"2026-12-31T00:00:00Z\",\"rolloutPercent\":%d,"
	    "\"artifacts\":{\"x86_64-linux\":{\"url\":\"https://example.com/a.tar.gz\","
	    "\"sha256\":\"" SHA_A "\",\"size\":4}%s}}",
	    version, serial, rollout, extra);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static void
sign_text(const struct sig_privkey *k, const char *msg, size_t len, char out[SIG_HEX_MAX + 2])
{
	unsigned char sig[SIG_MAX_LEN];
	size_t siglen;
	struct err e;

	err_clear(&e);
	assert_int_equal(sig_sign(k, msg, len, sig, &siglen, &e), 0);
	sig_text_format(sig, siglen, out);
}

static void
policy(struct manifest_policy *p)
{
	memset(p, 0, sizeof *p);
	p->keys[0] = p1;
	p->nkeys = 1;
	p->serial_hwm = 41;
	p->installed_version = "1.4.1";
	p->now_ms = NOW_MS;
	p->machine_id = MID;
	p->target = "x86_64-linux";
}

/* Sign `msg` with `k` and verify under `p`; returns manifest_verify's rc. */
static int
check(const struct manifest_policy *p, const struct sig_privkey *k, const char *msg,
      size_t len, struct manifest *m, struct err *e)
{
	char sig[SIG_HEX_MAX + 2];

	sign_text(k, msg, len, sig);
	err_clear(e);
	return manifest_verify(msg, len, sig, strlen(sig), p, m, e);
}

static const char *
ctx(const struct err *e, const char *key)
{
	for (int i = 0; i < e->nctx; i++)
		if (strcmp(e->ctx[i].key, key) == 0)
			return e->ctx[i].str;
	return NULL;
}

static void
sign_verify_round_trip(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_int_equal(m.reason, MR_NONE);
	assert_int_equal(m.key_index, 0);
	assert_string_equal(m.version, "1.4.2");
	assert_int_equal(m.serial, 42);
	assert_int_equal(m.newer, 1);
	assert_int_equal(m.rollout_percent, 100);
	assert_true(m.server.present);
	assert_false(m.appd.present);
	assert_string_equal(m.server.url, "https://example.com/a.tar.gz");
	assert_int_equal(m.server.size, 4);
	assert_int_equal(m.server.sha256[0], 0x9f);
	assert_int_equal(m.server.sha256[31], 0x08);
	assert_int_equal(m.expires_ms, iso8601_parse("2026-12-31T00:00:00Z"));
}

static void
tampered_byte_is_bad_signature(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048], sig[SIG_HEX_MAX + 2];
	size_t len;

	(void)state;
	policy(&p);
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	sign_text(&k1, buf, len, sig);
	buf[strstr(buf, "1.4.2") - buf + 4] = '3';        /* 1.4.2 -> 1.4.3 */
	err_clear(&e);
	assert_int_equal(manifest_verify(buf, len, sig, strlen(sig), &p, &m, &e), -1);
	assert_int_equal(e.code, ERR_REJECTED);
	assert_int_equal(m.reason, MR_SIGNATURE);
	assert_string_equal(ctx(&e, "reason"), "badSignature");
	assert_non_null(strstr(e.msg, "bad signature"));
	/* a flipped signature byte, and a malformed signature file */
	buf[strstr(buf, "1.4.3") - buf + 4] = '2';
	sig[20] = sig[20] == '0' ? '1' : '0';
	err_clear(&e);
	assert_int_equal(manifest_verify(buf, len, sig, strlen(sig), &p, &m, &e), -1);
	assert_int_equal(m.reason, MR_SIGNATURE);
	err_clear(&e);
	assert_int_equal(manifest_verify(buf, len, "zz\n", 3, &p, &m, &e), -1);
	assert_int_equal(m.reason, MR_SIGNATURE);
	assert_non_null(strstr(e.msg, "malformed signature file"));
}

static void
second_key_accepted_unknown_key_rejected(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	p.keys[1] = p2;
	p.nkeys = 2;
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	assert_int_equal(check(&p, &k2, buf, len, &m, &e), 0);
	assert_int_equal(m.key_index, 1);
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_int_equal(m.key_index, 0);
	assert_int_equal(check(&p, &k3, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_SIGNATURE);
	assert_int_equal(e.code, ERR_REJECTED);
	p.nkeys = 0;
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_SIGNATURE);
}

static void
serial_replay_rejected(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	p.serial_hwm = 42;
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_SERIAL);
	assert_string_equal(ctx(&e, "reason"), "serialReplay");
	len = make_manifest(buf, sizeof buf, "1.4.2", 7, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_SERIAL);
	len = make_manifest(buf, sizeof buf, "1.4.2", 43, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
}

static void
expired_rejected(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	p.now_ms = iso8601_parse("2026-12-31T00:00:00Z");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_EXPIRED);
	assert_non_null(strstr(e.msg, "expired"));
	p.now_ms -= 1;
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
}

static void
older_version_rejected(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	p.installed_version = "1.10.0";
	len = make_manifest(buf, sizeof buf, "1.9.9", 42, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_VERSION);
	assert_string_equal(ctx(&e, "installedVersion"), "1.10.0");
	/* the same version is accepted (e.g. a re-signed manifest), not newer */
	p.installed_version = "1.9.9";
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_int_equal(m.newer, 0);
	p.installed_version = NULL;
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_int_equal(m.newer, 1);
}

static int
vcmp(const char *a, const char *b)
{
	int c = 99;

	assert_int_equal(manifest_version_cmp(a, b, &c), 0);
	return c;
}

static void
version_compare_cases(void **state)
{
	int c;

	(void)state;
	assert_int_equal(vcmp("1.10.0", "1.9.9"), 1);
	assert_int_equal(vcmp("1.9.9", "1.10.0"), -1);
	assert_int_equal(vcmp("1.4.2", "1.4.2"), 0);
	assert_int_equal(vcmp("1.4", "1.4.0"), 0);
	assert_int_equal(vcmp("2", "1.99.99"), 1);
	assert_int_equal(vcmp("0.169.0", "0.170.0"), -1);
	assert_int_equal(vcmp("1.4.2.1", "1.4.2"), 1);
	assert_int_equal(vcmp("10.0.0", "9.0.0"), 1);
	assert_int_equal(vcmp("1.0.0-alpha", "1.0.0"), -1);
	assert_int_equal(vcmp("1.0.0", "1.0.0-rc.1"), 1);
	/* SemVer 2.0.0 §11 example chain */
	assert_int_equal(vcmp("1.0.0-alpha", "1.0.0-alpha.1"), -1);
	assert_int_equal(vcmp("1.0.0-alpha.1", "1.0.0-alpha.beta"), -1);
	assert_int_equal(vcmp("1.0.0-alpha.beta", "1.0.0-beta"), -1);
	assert_int_equal(vcmp("1.0.0-beta", "1.0.0-beta.2"), -1);
	assert_int_equal(vcmp("1.0.0-beta.2", "1.0.0-beta.11"), -1);
	assert_int_equal(vcmp("1.0.0-beta.11", "1.0.0-rc.1"), -1);
	assert_int_equal(vcmp("1.0.0+build.7", "1.0.0"), 0);
	assert_int_equal(manifest_version_cmp("1..2", "1", &c), -1);
	assert_int_equal(manifest_version_cmp("v1.2", "1", &c), -1);
	assert_int_equal(manifest_version_cmp("1.2.3.4.5", "1", &c), -1);
	assert_int_equal(manifest_version_cmp("1.2-", "1", &c), -1);
	assert_int_equal(manifest_version_cmp("", "1", &c), -1);
	assert_int_equal(manifest_version_cmp("99999999999999999999", "1", &c), -1);
}

static void
rollout_bucket(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048], id[32];
	size_t len;
	int seen[100] = { 0 }, i, hit = 0, in = -1, out = -1;

	(void)state;
	/* known answers (python: int.from_bytes(sha256(id+v)[:8],'big') % 100) */
	assert_int_equal(manifest_bucket(MID, "1.4.2"), 98);
	assert_int_equal(manifest_bucket(MID, "1.4.3"), 95);
	assert_int_equal(manifest_bucket("host-b", "1.4.2"), 43);
	assert_int_equal(manifest_bucket(MID, "1.4.2"), manifest_bucket(MID, "1.4.2"));
	for (i = 0; i < 2000; i++) {
		snprintf(id, sizeof id, "machine-%d", i);
		seen[manifest_bucket(id, "1.4.2")] = 1;
	}
	for (i = 0; i < 100; i++)
		hit += seen[i];
	assert_true(hit > 95);

	policy(&p);
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 0, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_ROLLOUT);
	assert_int_equal(m.bucket, 98);
	assert_string_equal(ctx(&e, "reason"), "notInRollout");
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100, "");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	/* 50%: a host below the line is in, one above it is out */
	for (i = 0; i < 1000 && (in < 0 || out < 0); i++) {
		snprintf(id, sizeof id, "machine-%d", i);
		if (manifest_bucket(id, "1.4.2") < 50)
			in = i;
		else
			out = i;
	}
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 50, "");
	snprintf(id, sizeof id, "machine-%d", in);
	p.machine_id = id;
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	snprintf(id, sizeof id, "machine-%d", out);
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_ROLLOUT);
}

static void
target_artifacts(void **state)
{
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	char buf[2048];
	size_t len;

	(void)state;
	policy(&p);
	/* appd's own artifact is appd-<the compile-time target>, whatever
	 * app-server build updater.target picks; another target's appd is
	 * never taken */
	len = make_manifest(buf, sizeof buf, "1.4.2", 42, 100,
	    ",\"appd-" APPD_TARGET "\":{\"url\":\"https://example.com/appd\",\"sha256\":\""
	    SHA_A "\",\"size\":4},\"aarch64-linux\":{\"url\":\"https://example.com/b\","
	    "\"sha256\":\"" SHA_A "\",\"size\":5},\"appd-sparc64-linux\":{\"url\":"
	    "\"https://example.com/wrong\",\"sha256\":\"" SHA_A "\",\"size\":6}");
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_true(m.appd.present);
	assert_string_equal(m.appd.url, "https://example.com/appd");
	p.target = "aarch64-linux";
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), 0);
	assert_int_equal(m.server.size, 5);
	assert_true(m.appd.present);
	assert_string_equal(m.appd.url, "https://example.com/appd");
	p.target = "riscv64-linux";
	assert_int_equal(check(&p, &k1, buf, len, &m, &e), -1);
	assert_int_equal(m.reason, MR_TARGET);
	assert_string_equal(ctx(&e, "target"), "riscv64-linux");
}

static void
shape_schema_and_name(void **state)
{
#define HEAD "{\"schema\":1,\"name\":\"app-server\","
#define EXP "\"expires\":\"2026-12-31T00:00:00Z\","
#define ART(url, sha, size) "\"artifacts\":{\"x86_64-linux\":{\"url\":\"" url \
	"\",\"sha256\":\"" sha "\",\"size\":" size "}}}"
	static const char *bad[] = {
		/* not https, bad sha256, negative size, bad version, missing
		 * artifacts, duplicate member, rollout out of range, bad expires */
		HEAD "\"version\":\"1.4.2\",\"serial\":42," EXP ART("http://x/a", SHA_A, "4"),
		HEAD "\"version\":\"1.4.2\",\"serial\":42," EXP ART("https://x/a", "abc", "4"),
		HEAD "\"version\":\"1.4.2\",\"serial\":42," EXP ART("https://x/a", SHA_A, "-4"),
		HEAD "\"version\":\"latest\",\"serial\":42," EXP "\"artifacts\":{}}",
		HEAD "\"version\":\"1.4.2\",\"serial\":42,\"expires\":\"2026-12-31T00:00:00Z\"}",
		HEAD "\"version\":\"1.4.2\",\"version\":\"9.9.9\",\"serial\":42," EXP
		    "\"artifacts\":{}}",
		HEAD "\"version\":\"1.4.2\",\"serial\":42,\"rolloutPercent\":101," EXP
		    "\"artifacts\":{}}",
		HEAD "\"version\":\"1.4.2\",\"serial\":42,\"expires\":\"tomorrow\","
		    "\"artifacts\":{}}",
		"[1,2]",
	};
	struct manifest_policy p;
	struct manifest m;
	struct err e;
	const char *js;
	size_t i;

	(void)state;
	policy(&p);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(check(&p, &k1, bad[i], strlen(bad[i]), &m, &e), -1);
		if (m.reason != MR_INVALID)
			fail_msg("case %zu: reason %d (%s)", i, m.reason, e.msg);
		assert_int_equal(e.code, ERR_REJECTED);
	}
	js = "{\"schema\":2,\"whatever\":true}";
	assert_int_equal(check(&p, &k1, js, strlen(js), &m, &e), -1);
	assert_int_equal(m.reason, MR_SCHEMA);
	js = "{\"schema\":1,\"name\":\"other\",\"version\":\"1.4.2\",\"serial\":42,"
	    "\"expires\":\"2026-12-31T00:00:00Z\",\"artifacts\":{}}";
	assert_int_equal(check(&p, &k1, js, strlen(js), &m, &e), -1);
	assert_int_equal(m.reason, MR_NAME);
	/* rolloutPercent is optional (100); unknown members are ignored */
	js = "{\"schema\":1,\"name\":\"app-server\",\"version\":\"1.4.2\",\"serial\":42,"
	    "\"expires\":\"2026-12-31T00:00:00Z\",\"notes\":[\"x\"],\"artifacts\":"
	    "{\"x86_64-linux\":{\"url\":\"https://x/a\",\"sha256\":\"" SHA_A "\",\"size\":4}}}";
	assert_int_equal(check(&p, &k1, js, strlen(js), &m, &e), 0);
	assert_int_equal(m.rollout_percent, 100);
}

static void
artifact_check_cases(void **state)
{
	struct artifact_check c;
	unsigned char sha[SIG_SHA256_LEN];
	size_t n;
	struct err e;

	(void)state;
	assert_int_equal(hex_decode(SHA_A, 64, sha, sizeof sha, &n), 0);
	/* good, in chunks */
	err_clear(&e);
	artifact_check_init(&c, 4, sha);
	assert_int_equal(artifact_check_update(&c, "te", 2, &e), 0);
	assert_int_equal(artifact_check_update(&c, "", 0, &e), 0);
	assert_int_equal(artifact_check_update(&c, "st", 2, &e), 0);
	assert_int_equal(artifact_check_final(&c, &e), 0);
	/* size overflow fails at once, and stays failed */
	err_clear(&e);
	artifact_check_init(&c, 4, sha);
	assert_int_equal(artifact_check_update(&c, "tes", 3, &e), 0);
	assert_int_equal(artifact_check_update(&c, "tx", 2, &e), -1);
	assert_int_equal(e.code, ERR_REJECTED);
	assert_string_equal(ctx(&e, "reason"), "size");
	assert_int_equal(artifact_check_final(&c, &e), -1);
	/* truncated */
	err_clear(&e);
	artifact_check_init(&c, 4, sha);
	assert_int_equal(artifact_check_update(&c, "tes", 3, &e), 0);
	assert_int_equal(artifact_check_final(&c, &e), -1);
	assert_string_equal(ctx(&e, "reason"), "truncated");
	/* hash mismatch */
	err_clear(&e);
	artifact_check_init(&c, 4, sha);
	assert_int_equal(artifact_check_update(&c, "tost", 4, &e), 0);
	assert_int_equal(artifact_check_final(&c, &e), -1);
	assert_string_equal(ctx(&e, "reason"), "sha256");
	assert_non_null(strstr(e.msg, "does not match"));
}

static void
keygen_file_and_formats(void **state)
{
	char path[128], hex[SIG_PUB_HEX_LEN + 1], text[256];
	struct sig_privkey sk;
	struct sig_pubkey pk, pk2;
	struct stat st;
	struct err e;
	mode_t old;
	size_t len;

	(void)state;
	snprintf(path, sizeof path, "%s/release.key", dir);
	err_clear(&e);
	old = umask(022);
	assert_int_equal(sig_privkey_save(path, &k1, &e), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(fs_read_file(path, text, sizeof text, &len), 0);
	assert_int_equal(len, 65);
	assert_int_equal(text[64], '\n');
	/* never over an existing file */
	assert_int_equal(sig_privkey_save(path, &k2, &e), -1);
	assert_non_null(strstr(e.msg, "refusing to overwrite"));
	err_clear(&e);
	assert_int_equal(sig_privkey_load(path, &sk, &e), 0);
	assert_memory_equal(sk.x, k1.x, SIG_PRIV_LEN);
	assert_int_equal(sig_pubkey_of(&sk, &pk, &e), 0);
	assert_memory_equal(pk.q, p1.q, SIG_PUB_LEN);

	/* public key hex round trip; off-curve and wrong-length keys refused */
	sig_pubkey_hex(&p1, hex);
	assert_int_equal(strlen(hex), 130);
	assert_memory_equal(hex, "04", 2);
	assert_int_equal(sig_pubkey_parse(hex, &pk2, &e), 0);
	assert_memory_equal(pk2.q, p1.q, SIG_PUB_LEN);
	hex[100] = hex[100] == '0' ? '1' : '0';
	assert_int_equal(sig_pubkey_parse(hex, &pk2, &e), -1);
	assert_non_null(strstr(e.msg, "not on the curve"));
	hex[128] = '\0';
	assert_int_equal(sig_pubkey_parse(hex, &pk2, &e), -1);

	/* out-of-range and malformed private keys */
	snprintf(path, sizeof path, "%s/zero.key", dir);
	assert_int_equal(fs_write_atomic(path, "0000000000000000000000000000000000000000"
	    "000000000000000000000000\n", 65, 0600), 0);
	assert_int_equal(sig_privkey_load(path, &sk, &e), -1);
	snprintf(path, sizeof path, "%s/order.key", dir);
	assert_int_equal(fs_write_atomic(path, "ffffffff00000000ffffffffffffffffbce6faad"
	    "a7179e84f3b9cac2fc632551", 64, 0600), 0);
	assert_int_equal(sig_privkey_load(path, &sk, &e), -1);
	snprintf(path, sizeof path, "%s/missing.key", dir);
	assert_int_equal(sig_privkey_load(path, &sk, &e), -1);
	assert_int_equal(e.code, ERR_IO);

	/* keys differ; signatures are deterministic (RFC 6979) */
	assert_memory_not_equal(p1.q, p2.q, SIG_PUB_LEN);
	{
		char s1[SIG_HEX_MAX + 2], s2[SIG_HEX_MAX + 2];

		sign_text(&k1, "abc", 3, s1);
		sign_text(&k1, "abc", 3, s2);
		assert_string_equal(s1, s2);
		assert_int_equal(s1[strlen(s1) - 1], '\n');
	}
}

static void
machine_id_fallback(void **state)
{
	char sys1[128], sys2[128], fb[128], id[MACHINE_ID_MAX], id2[MACHINE_ID_MAX];
	const char *paths[2];
	struct stat st;
	struct err e;

	(void)state;
	snprintf(sys1, sizeof sys1, "%s/etc-machine-id", dir);
	snprintf(sys2, sizeof sys2, "%s/dbus-machine-id", dir);
	snprintf(fb, sizeof fb, "%s/machine-id", dir);
	paths[0] = sys1;
	paths[1] = sys2;
	err_clear(&e);
	/* nothing: a random id is created and kept */
	assert_int_equal(machineid_get_from(paths, 2, fb, id, &e), 0);
	assert_int_equal(strlen(id), 32);
	assert_int_equal(stat(fb, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(machineid_get_from(paths, 2, fb, id2, &e), 0);
	assert_string_equal(id, id2);
	/* an empty or "uninitialized" system file does not count */
	assert_int_equal(fs_write_atomic(sys1, "", 0, 0644), 0);
	assert_int_equal(fs_write_atomic(sys2, "uninitialized\n", 14, 0644), 0);
	assert_int_equal(machineid_get_from(paths, 2, fb, id2, &e), 0);
	assert_string_equal(id, id2);
	/* the dbus copy, then /etc/machine-id, win over the fallback */
	assert_int_equal(fs_write_atomic(sys2, "bbbb\n", 5, 0644), 0);
	assert_int_equal(machineid_get_from(paths, 2, fb, id2, &e), 0);
	assert_string_equal(id2, "bbbb");
	assert_int_equal(fs_write_atomic(sys1, "aaaa\nrest", 9, 0644), 0);
	assert_int_equal(machineid_get_from(paths, 2, fb, id2, &e), 0);
	assert_string_equal(id2, "aaaa");
	/* the real one works on this host one way or another */
	assert_int_equal(machineid_get(fb, id2, &e), 0);
	assert_true(strlen(id2) > 0);
}

/* Interoperability: a key and signature made by OpenSSL 3.0
 * (`openssl ecparam -name prime256v1 -genkey`, `openssl dgst -sha256
 * -sign`) verify here; a changed message does not. */
static void
openssl_signature_verifies(void **state)
{
	static const char pub[] =
	    "04e0304d6df3e1023c9040ae71c64b6e5581a129ae855f6f626d531c69f68cba71"
	    "249862e11b7ca557cfaeb22d688e41e43193c2f9c543c51e497d2f4959b2aae9";
	static const char sig[] =
	    "304402202af5bd09568cb73448615e3a1737495177679d7052fa8fe3cb2ff5bea1"
	    "5562cb02204b76a568c5b117fec06c0c725f48b82bda4fa13195fd38efa18b3a5dd3d2828e\n";
	static const char msg[] = "{\"schema\":1,\"name\":\"app-server\"}";
	struct sig_pubkey keys[2];
	unsigned char der[SIG_MAX_LEN];
	size_t derlen;
	struct err e;

	(void)state;
	err_clear(&e);
	keys[0] = p1;
	assert_int_equal(sig_pubkey_parse(pub, &keys[1], &e), 0);
	assert_int_equal(sig_text_parse(sig, strlen(sig), der, &derlen, &e), 0);
	assert_int_equal(derlen, 70);
	assert_int_equal(sig_verify(keys, 2, msg, strlen(msg), der, derlen, &e), 1);
	assert_int_equal(sig_verify(keys, 2, msg, strlen(msg) - 1, der, derlen, &e), -1);
	assert_int_equal(e.code, ERR_REJECTED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sign_verify_round_trip),
		cmocka_unit_test(tampered_byte_is_bad_signature),
		cmocka_unit_test(second_key_accepted_unknown_key_rejected),
		cmocka_unit_test(serial_replay_rejected),
		cmocka_unit_test(expired_rejected),
		cmocka_unit_test(older_version_rejected),
		cmocka_unit_test(version_compare_cases),
		cmocka_unit_test(rollout_bucket),
		cmocka_unit_test(target_artifacts),
		cmocka_unit_test(shape_schema_and_name),
		cmocka_unit_test(artifact_check_cases),
		cmocka_unit_test(keygen_file_and_formats),
		cmocka_unit_test(machine_id_fallback),
		cmocka_unit_test(openssl_signature_verifies),
	};

	return cmocka_run_group_tests_name("manifest", tests, setup, teardown);
}
