/*
 * trust.h -- X.509 trust anchors for the updater's HTTPS fetches, loaded
 * at run time from a PEM bundle into a caller-owned fixed arena.
 *
 * Shape (after BearSSL's tools/certs.c certificate_to_trust_anchor and
 * skarnet's sbearssl_ta_readfile): the file is read in 4 KiB pieces and
 * pushed through br_pem_decoder; the bytes of each "CERTIFICATE" (or
 * "X509 CERTIFICATE") object go straight into br_x509_decoder, whose
 * subject-DN callback appends to the arena; at the end of the object the
 * public key (RSA or EC; BearSSL represents no other) is copied into the
 * arena too, since the decoder's key points into the decoder context.
 * BR_X509_TA_CA is set when the certificate says cA:TRUE (as brssl does);
 * a non-CA anchor makes br_x509_minimal accept exactly that server key.
 *
 * What is skipped (counted in `skipped`, not an error): objects that do
 * not decode as a certificate, and certificates whose key is neither RSA
 * nor EC.  Other PEM objects (keys, CRLs, "TRUSTED CERTIFICATE") are
 * ignored silently.  Errors (all ERR_IO, with a "path" context member):
 * the file cannot be opened or read, the PEM syntax is broken, the
 * bundle does not fit (more than TRUST_MAX_ANCHORS certificates or more
 * than TRUST_ARENA_SIZE bytes of names and keys), or it holds no usable
 * certificate at all (including an empty file).
 *
 * Sizes: Debian bookworm's /etc/ssl/certs/ca-certificates.crt (144
 * certificates, 109 RSA + 35 EC) takes 61 917 bytes of arena; the struct
 * is about 215 KiB: keep it static.  Anchors point into the arena, so the
 * struct must not be copied or moved while a fetch uses it.
 *
 * Source: BearSSL 0.6 bearssl_pem.h / bearssl_x509.h (br_x509_decoder_*,
 * br_x509_trust_anchor), tools/certs.c, tools/files.c.
 */
#ifndef APPD_TRUST_H
#define APPD_TRUST_H

#include <stddef.h>

#include <bearssl.h>

#include "core/base/err.h"

#define TRUST_MAX_ANCHORS 256
#define TRUST_ARENA_SIZE  (192 * 1024)   /* bytes for DNs and keys */
#define TRUST_PATH_MAX    4096

/* The bundles tried, in order, when neither caFile nor $SSL_CERT_FILE is
 * given (Debian/Ubuntu/Alpine/Arch, Fedora/RHEL, OpenBSD/macOS/Alpine,
 * openSUSE). */
#define TRUST_SYSTEM_BUNDLES \
	"/etc/ssl/certs/ca-certificates.crt", \
	"/etc/pki/tls/certs/ca-bundle.crt", \
	"/etc/ssl/cert.pem", \
	"/etc/ssl/ca-bundle.pem"

struct trust_store {
	/* ---- results ---- */
	size_t n;                                   /* anchors in ta[] */
	br_x509_trust_anchor ta[TRUST_MAX_ANCHORS];
	size_t skipped;                             /* certificates not usable */
	char path[TRUST_PATH_MAX];                  /* where they came from */

	/* ---- private ---- */
	size_t used;                                /* arena bytes in use */
	size_t mark;                                /* arena use before this cert */
	int in_cert;                                /* inside a CERTIFICATE object */
	int overflow;                               /* arena full during this cert */
	br_pem_decoder_context pc;
	br_x509_decoder_context dc;
	unsigned char arena[TRUST_ARENA_SIZE];
};

/*
 * Empty `ts` (n = 0).  Call before the first trust_add_pem().
 */
void trust_reset(struct trust_store *ts);

/*
 * Add the certificates of the PEM text `pem` (`len` bytes, need not be
 * NUL-terminated; the whole bundle in one call) to `ts`.  `what` names the
 * source in error messages (a path, or "memory").  Returns the number of
 * anchors added (>= 0; 0 when the text holds no certificate), or -1 with
 * `e` set (ERR_IO: broken PEM, bundle too large).  On error `ts` keeps the
 * anchors added before this call.
 */
int trust_add_pem(struct trust_store *ts, const void *pem, size_t len,
    const char *what, struct err *e);

/*
 * Replace the content of `ts` with the anchors of the PEM bundle file
 * `path`.  0, or -1 with `e` set (ERR_IO, context "path"): cannot open or
 * read, broken PEM, too large, or no usable certificate ("no usable
 * certificate in PATH").  ts->path is set on success.
 */
int trust_load_file(struct trust_store *ts, const char *path, struct err *e);

/*
 * The bundle path to use: `ca_file` (updater.caFile) when non-NULL and
 * non-empty; else $SSL_CERT_FILE when set and non-empty; else the first of
 * TRUST_SYSTEM_BUNDLES that exists.  NULL when none exists.  The result
 * points at `ca_file`, the environment, or a static string.
 */
const char *trust_bundle_path(const char *ca_file);

/*
 * trust_load_file(trust_bundle_path(ca_file)).  An explicit caFile or
 * $SSL_CERT_FILE that fails is an error (no fall back to the system
 * bundle).  -1 with ERR_IO "no CA bundle found (tried ...)" when there is
 * no path at all.
 */
int trust_load_default(struct trust_store *ts, const char *ca_file, struct err *e);

#endif
