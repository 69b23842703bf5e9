/* sig.c -- see sig.h. */
#include "core/update/sig.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"

#include <bearssl.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Order n of the P-256 base point (FIPS 186-4 D.1.2.3), big-endian. */
static const unsigned char p256_order[SIG_PRIV_LEN] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
};

/* The generic constant-time i31 code for NIST curves, used here for
 * P-256 only.  The HTTPS client (core/https.c) uses the same
 * implementation, so only one P-256 implementation is linked; it is also
 * smaller than br_ec_p256_m15 (about 3 KB against 14 KB at -Os on
 * x86-64).  Keys and signatures do not depend on the implementation
 * (RFC 6979 nonces). */
#define EC_IMPL (&br_ec_prime_i31)

static void
wipe(void *p, size_t n)
{
	compat_wipe(p, n);
}

void
sig_sha256(const void *data, size_t n, unsigned char out[SIG_SHA256_LEN])
{
	br_sha256_context c;

	br_sha256_init(&c);
	br_sha256_update(&c, data, n);
	br_sha256_out(&c, out);
}

int
sig_file_sha256(const char *path, unsigned char out[SIG_SHA256_LEN], unsigned long long *size)
{
	br_sha256_context c;
	unsigned char buf[4096];        /* small: the supervisor's stack stays small */
	unsigned long long n = 0;
	struct stat st;
	ssize_t r;
	int fd = fs_open_regular(path, O_RDONLY, 0, &st);

	if (fd < 0)
		return -1;
	br_sha256_init(&c);
	while ((r = fd_read(fd, buf, sizeof buf)) > 0) {
		br_sha256_update(&c, buf, (size_t)r);
		n += (unsigned long long)r;
	}
	close(fd);
	if (r < 0)
		return -1;
	br_sha256_out(&c, out);
	if (size)
		*size = n;
	return 0;
}

/* 1 <= x < n, in constant time over the 32 bytes. */
static int
scalar_ok(const unsigned char x[SIG_PRIV_LEN])
{
	unsigned lt = 0, gt = 0, nz = 0;
	int i;

	for (i = 0; i < SIG_PRIV_LEN; i++) {
		unsigned a = x[i], b = p256_order[i];
		unsigned undecided = !(lt | gt);

		lt |= undecided & (a < b);
		gt |= undecided & (a > b);
		nz |= a;
	}
	return lt && nz != 0;
}

static void
priv_view(const struct sig_privkey *sk, br_ec_private_key *k)
{
	k->curve = BR_EC_secp256r1;
	k->x = (unsigned char *)sk->x;
	k->xlen = SIG_PRIV_LEN;
}

int
sig_pubkey_of(const struct sig_privkey *sk, struct sig_pubkey *pk, struct err *e)
{
	br_ec_private_key k;
	unsigned char q[BR_EC_KBUF_PUB_MAX_SIZE];

	if (!scalar_ok(sk->x))
		return err_set(e, ERR_OTHER, "private key is out of range for P-256");
	priv_view(sk, &k);
	if (br_ec_compute_pub(EC_IMPL, NULL, q, &k) != SIG_PUB_LEN)
		return err_set(e, ERR_OTHER, "cannot compute the P-256 public key");
	memcpy(pk->q, q, SIG_PUB_LEN);
	return 0;
}

int
sig_keygen(struct sig_privkey *sk, struct sig_pubkey *pk, struct err *e)
{
	br_hmac_drbg_context rng;
	br_ec_private_key k;
	unsigned char seed[48], kbuf[BR_EC_KBUF_PRIV_MAX_SIZE];
	size_t n;
	int rc = -1;

	if (entropy_get(seed, sizeof seed, e) < 0)
		return -1;
	br_hmac_drbg_init(&rng, &br_sha256_vtable, seed, sizeof seed);
	n = br_ec_keygen(&rng.vtable, EC_IMPL, &k, kbuf, BR_EC_secp256r1);
	if (n != SIG_PRIV_LEN) {
		err_set(e, ERR_OTHER, "P-256 key generation failed");
		goto out;
	}
	memcpy(sk->x, kbuf, SIG_PRIV_LEN);
	if (pk != NULL && sig_pubkey_of(sk, pk, e) < 0)
		goto out;
	rc = 0;
out:
	wipe(seed, sizeof seed);
	wipe(kbuf, sizeof kbuf);
	wipe(&rng, sizeof rng);
	return rc;
}

void
sig_pubkey_hex(const struct sig_pubkey *pk, char out[SIG_PUB_HEX_LEN + 1])
{
	hex_encode(pk->q, SIG_PUB_LEN, out);
}

int
sig_pubkey_parse(const char *hex, struct sig_pubkey *pk, struct err *e)
{
	static const unsigned char one = 1;
	unsigned char q[SIG_PUB_LEN];
	size_t n;

	if (strlen(hex) != SIG_PUB_HEX_LEN ||
	    hex_decode(hex, SIG_PUB_HEX_LEN, q, sizeof q, &n) < 0 || q[0] != 0x04)
		return err_set(e, ERR_OTHER,
		    "not a P-256 public key: want %d hex characters of an uncompressed "
		    "point (04...)", SIG_PUB_HEX_LEN);
	memcpy(pk->q, q, SIG_PUB_LEN);
	/* mul() decodes the point and fails unless it is on the curve */
	if (!EC_IMPL->mul(q, SIG_PUB_LEN, &one, 1, BR_EC_secp256r1))
		return err_set(e, ERR_OTHER,
		    "not a P-256 public key: the point is not on the curve");
	return 0;
}

int
sig_privkey_save(const char *path, const struct sig_privkey *sk, struct err *e)
{
	char text[2 * SIG_PRIV_LEN + 2];
	struct stat st;
	int rc = 0;

	if (lstat(path, &st) == 0) {
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_OTHER, "refusing to overwrite existing file %s", path);
	}
	if (errno != ENOENT)
		return err_sys(e, ERR_IO, "cannot inspect %s", path);
	hex_encode(sk->x, SIG_PRIV_LEN, text);
	text[2 * SIG_PRIV_LEN] = '\n';
	if (fs_write_atomic(path, text, 2 * SIG_PRIV_LEN + 1, 0600) < 0) {
		err_ctx_str(e, "path", path);
		rc = err_sys(e, ERR_IO, "cannot write key file %s", path);
	}
	wipe(text, sizeof text);
	return rc;
}

static size_t
trim_len(const char *s, size_t len)
{
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
	    s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return len;
}

int
sig_privkey_load(const char *path, struct sig_privkey *sk, struct err *e)
{
	char text[256];
	size_t len, n;
	int rc = 0;

	if (fs_read_file(path, text, sizeof text, &len) < 0) {
		err_ctx_str(e, "path", path);
		return err_sys(e, ERR_IO, "cannot read key file %s", path);
	}
	len = trim_len(text, len);
	if (len != 2 * SIG_PRIV_LEN ||
	    hex_decode(text, len, sk->x, sizeof sk->x, &n) < 0 || !scalar_ok(sk->x)) {
		err_ctx_str(e, "path", path);
		rc = err_set(e, ERR_OTHER,
		    "%s is not an appd release key (64 hex characters of a P-256 scalar)", path);
		wipe(sk->x, sizeof sk->x);
	}
	wipe(text, sizeof text);
	return rc;
}

static uint32_t
vrfy_one(const struct sig_pubkey *key, const unsigned char hash[SIG_SHA256_LEN],
	 const unsigned char *sig, size_t siglen)
{
	unsigned char q[SIG_PUB_LEN];
	br_ec_public_key pk;

	memcpy(q, key->q, SIG_PUB_LEN);
	pk.curve = BR_EC_secp256r1;
	pk.q = q;
	pk.qlen = SIG_PUB_LEN;
	return br_ecdsa_i31_vrfy_asn1(EC_IMPL, hash, SIG_SHA256_LEN, &pk, sig, siglen);
}

int
sig_sign(const struct sig_privkey *sk, const void *msg, size_t len,
	 unsigned char sig[SIG_MAX_LEN], size_t *siglen, struct err *e)
{
	unsigned char hash[SIG_SHA256_LEN];
	struct sig_pubkey pk;
	br_ec_private_key k;
	size_t n;

	if (sig_pubkey_of(sk, &pk, e) < 0)
		return -1;
	sig_sha256(msg, len, hash);
	priv_view(sk, &k);
	n = br_ecdsa_i31_sign_asn1(EC_IMPL, &br_sha256_vtable, hash, &k, sig);
	if (n == 0 || n > SIG_MAX_LEN || !vrfy_one(&pk, hash, sig, n))
		return err_set(e, ERR_OTHER, "ECDSA signing failed");
	*siglen = n;
	return 0;
}

int
sig_verify(const struct sig_pubkey *keys, int nkeys, const void *msg, size_t len,
	   const unsigned char *sig, size_t siglen, struct err *e)
{
	unsigned char hash[SIG_SHA256_LEN];
	int i;

	if (nkeys < 1 || nkeys > SIG_MAX_KEYS)
		return err_set(e, ERR_REJECTED, "no release public key is configured");
	if (siglen == 0 || siglen > SIG_MAX_LEN)
		return err_set(e, ERR_REJECTED, "malformed signature (%zu bytes)", siglen);
	sig_sha256(msg, len, hash);
	for (i = 0; i < nkeys; i++)
		if (vrfy_one(&keys[i], hash, sig, siglen))
			return i;
	return err_set(e, ERR_REJECTED,
	    "bad signature: it does not verify with %s (tampered, or signed by an unknown key)",
	    nkeys == 1 ? "the configured key" : "either configured key");
}

void
sig_text_format(const unsigned char *sig, size_t siglen, char out[SIG_HEX_MAX + 2])
{
	if (siglen > SIG_MAX_LEN)
		siglen = SIG_MAX_LEN;
	hex_encode(sig, siglen, out);
	out[2 * siglen] = '\n';
	out[2 * siglen + 1] = '\0';
}

int
sig_text_parse(const char *text, size_t len, unsigned char sig[SIG_MAX_LEN],
	       size_t *siglen, struct err *e)
{
	len = trim_len(text, len);
	if (len == 0 || hex_decode(text, len, sig, SIG_MAX_LEN, siglen) < 0)
		return err_set(e, ERR_REJECTED,
		    "malformed signature file: want the hex of a DER ECDSA signature");
	return 0;
}
