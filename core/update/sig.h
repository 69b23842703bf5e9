/*
 * sig.h -- release signing keys and signatures: ECDSA over NIST P-256
 * with SHA-256 (FIPS 186-4, SEC 1 v2), BearSSL 0.6 (DESIGN.md "Updater",
 * updater-reactor-style.md §1.11).
 *
 * Formats (all text is lowercase hex; parsers also take uppercase):
 *
 *   public key     the uncompressed SEC 1 point 04 || X || Y, 65 bytes,
 *                  as 130 hex characters.  This is the form settings
 *                  take and `appd release keygen` prints.  Parsing checks
 *                  that the point is on the curve.
 *   private key    file of 64 hex characters (the 32-byte big-endian
 *                  scalar, 1 <= x < n) and one "\n"; mode 0600, written
 *                  atomically, never over an existing file.
 *   signature      ECDSA-Sig-Value, DER (RFC 3279 §2.2.3; what
 *                  `openssl dgst -sha256 -sign` writes), over SHA-256 of
 *                  the exact signed bytes.  The .sig file holds the DER
 *                  as hex (at most 144 characters) and one "\n";
 *                  trailing white space is ignored when reading.
 *                  `xxd -r -p manifest.json.sig > sig.der` gives the
 *                  binary form for `openssl dgst -sha256 -verify`.
 *
 * Signing is deterministic (BearSSL uses RFC 6979 nonces), so it needs no
 * random source; key generation seeds an HMAC_DRBG (SP 800-90A) from
 * getentropy(3).  Every function fills `struct err` on failure; nothing
 * is allocated; private key bytes are wiped from the stack after use.
 */
#ifndef APPD_SIG_H
#define APPD_SIG_H

#include <stddef.h>

#include "core/base/err.h"
#include "core/base/entropy.h"
#include "core/base/hex.h"

#define SIG_PUB_LEN      65          /* 04 || X || Y */
#define SIG_PUB_HEX_LEN  130
#define SIG_PRIV_LEN     32
#define SIG_MAX_LEN      72          /* DER, P-256 */
#define SIG_HEX_MAX      (2 * SIG_MAX_LEN)
#define SIG_SHA256_LEN   32
#define SIG_MAX_KEYS     2           /* current + next (key rotation) */

struct sig_pubkey {
	unsigned char q[SIG_PUB_LEN];
};

struct sig_privkey {
	unsigned char x[SIG_PRIV_LEN];
};

/* SHA-256 (FIPS 180-4) of `n` bytes. */
void sig_sha256(const void *data, size_t n, unsigned char out[SIG_SHA256_LEN]);
/* SHA-256 and size (bytes; `size` may be NULL) of the regular file at
 * `path`, read in 16 KiB pieces.  0, or -1 with errno (EINVAL: not a
 * regular file). */
int sig_file_sha256(const char *path, unsigned char out[SIG_SHA256_LEN],
		    unsigned long long *size);

/* New P-256 key pair (br_ec_keygen over br_ec_prime_i31, HMAC_DRBG seeded
 * from getentropy).  `pk` may be NULL. */
int sig_keygen(struct sig_privkey *sk, struct sig_pubkey *pk, struct err *e);
/* The public key of `sk`; ERR_OTHER when `sk` is out of range. */
int sig_pubkey_of(const struct sig_privkey *sk, struct sig_pubkey *pk, struct err *e);

/* Public key <-> 130 hex characters.  parse: `hex` is NUL-terminated;
 * ERR_OTHER ("not a P-256 public key") when the length or encoding is
 * wrong or the point is not on the curve. */
void sig_pubkey_hex(const struct sig_pubkey *pk, char out[SIG_PUB_HEX_LEN + 1]);
int sig_pubkey_parse(const char *hex, struct sig_pubkey *pk, struct err *e);

/* Private key file.  save: refuses (ERR_OTHER, path in context) when
 * `path` exists; writes 0600 through fs_write_atomic.  load: ERR_IO when
 * unreadable, ERR_OTHER when the content is not a valid key. */
int sig_privkey_save(const char *path, const struct sig_privkey *sk, struct err *e);
int sig_privkey_load(const char *path, struct sig_privkey *sk, struct err *e);

/* Sign SHA-256(msg): DER into `sig` (SIG_MAX_LEN bytes), length in
 * `*siglen`.  The signature is checked against the public key before it
 * is returned (guards against faults). */
int sig_sign(const struct sig_privkey *sk, const void *msg, size_t len,
	     unsigned char sig[SIG_MAX_LEN], size_t *siglen, struct err *e);

/* Verify a DER signature over SHA-256(msg) against `nkeys` (1..2) public
 * keys.  Returns the index of the key that matched, or -1 with
 * ERR_REJECTED: a bad signature and an unknown key look the same. */
int sig_verify(const struct sig_pubkey *keys, int nkeys, const void *msg, size_t len,
	       const unsigned char *sig, size_t siglen, struct err *e);

/* .sig file text: `out` gets hex + "\n" + NUL (SIG_HEX_MAX + 2 bytes). */
void sig_text_format(const unsigned char *sig, size_t siglen, char out[SIG_HEX_MAX + 2]);
/* Parse .sig file text (`len` bytes, trailing white space ignored) into
 * DER.  ERR_REJECTED ("malformed signature file") when it is not hex or
 * too long. */
int sig_text_parse(const char *text, size_t len, unsigned char sig[SIG_MAX_LEN],
		   size_t *siglen, struct err *e);

#endif
