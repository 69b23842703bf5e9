/*
 * manifest.h -- the signed release manifest (DESIGN.md "Updater"): parse,
 * check against a local policy, pick this host's artifacts, and check an
 * artifact's size and SHA-256 while it streams to disk.
 *
 * manifest.json (compact, as `appd release sign` writes it; members may
 * come in any order when read, unknown members are ignored):
 *
 *   {"schema":1,"name":"app-server","version":"1.4.2","serial":42,
 *    "expires":"2026-12-31T00:00:00Z","rolloutPercent":100,
 *    "artifacts":{"x86_64-linux":{"url":"https://…","sha256":"<64 hex>",
 *                                 "size":123456},
 *                 "appd-x86_64-linux":{…}}}
 *
 * Artifact names: "<target>" is the app-server build for a target
 * ("x86_64-linux", "aarch64-linux", …: [a-z0-9_-], 1..63 characters);
 * "appd-<target>" is appd's own binary (optional; the supervisor installs
 * it and re-execs when its SHA-256 differs from the running binary's --
 * its freshness comes from the manifest serial).  That <target> is always
 * the running binary's compile-time APPD_TARGET (platform/target.h), even
 * when updater.target names another app-server build, so a fleet of mixed
 * architectures each takes its own appd from one manifest.
 * "version" is the app-server's version.  rolloutPercent is optional
 * (0..100, default 100; 0 is the kill switch).  URLs must be https://.
 *
 * Checks, in this order, each failing with ERR_REJECTED, a message naming
 * the rule, and a "reason" context member (enum manifest_reason names):
 *   1. signature over the exact bytes by one of the     badSignature
 *      configured keys (a bad signature and an unknown
 *      key look the same; sig.h)
 *   2. schema == 1 (read first, so that a future schema  schema
 *      is reported as such)
 *   3. JSON shape and member types                       invalidManifest
 *   4. name == policy name                               name
 *   5. serial > stored high-water mark                   serialReplay
 *   6. now < expires                                     expired
 *   7. version >= installed (manifest_version_cmp)       olderVersion
 *   8. rollout bucket < rolloutPercent                   notInRollout
 *   9. an artifact named <target>                        noArtifact
 * Nothing is parsed before the signature has been verified.
 *
 * Rollout bucket: the first 8 bytes of SHA-256(machine id || version) --
 * the two strings' bytes concatenated, no separator, no NUL -- read as a
 * big-endian 64-bit integer, mod 100 (so 0..99; stable per machine and
 * version, apt-style phasing).  A host is in the rollout when
 * bucket < rolloutPercent.
 *
 * The caller raises its stored high-water mark to `serial` only for an
 * accepted manifest; a manifest rejected by rule 8 is then evaluated
 * again (with the same answer) until a new one is published.
 *
 * Nothing here allocates, prints, or touches the network; the only files
 * touched are those of machineid_get().
 */
#ifndef APPD_MANIFEST_H
#define APPD_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <bearssl.h>

#include "core/base/err.h"
#include "core/update/sig.h"

#define MANIFEST_SCHEMA       1
#define MANIFEST_MAX_BYTES    65536
#define MANIFEST_MAX_TOKENS   1024
#define MANIFEST_NAME_MAX     64
#define MANIFEST_VERSION_MAX  64
#define MANIFEST_TARGET_MAX   64
#define MANIFEST_URL_MAX      2048
#define MANIFEST_APPD_PREFIX  "appd-"

enum manifest_reason {
	MR_NONE = 0,
	MR_SIGNATURE,          /* "badSignature" */
	MR_INVALID,            /* "invalidManifest" */
	MR_SCHEMA,             /* "schema" */
	MR_NAME,               /* "name" */
	MR_SERIAL,             /* "serialReplay" */
	MR_EXPIRED,            /* "expired" */
	MR_VERSION,            /* "olderVersion" */
	MR_ROLLOUT,            /* "notInRollout" */
	MR_TARGET              /* "noArtifact" */
};

struct manifest_artifact {
	int present;
	char url[MANIFEST_URL_MAX];
	unsigned char sha256[SIG_SHA256_LEN];
	unsigned long long size;            /* bytes */
};

/* What the host trusts and knows.  Strings are NUL-terminated and only
 * read during the call. */
struct manifest_policy {
	struct sig_pubkey keys[SIG_MAX_KEYS];
	int nkeys;                          /* 1..2 */
	const char *name;                   /* expected name; NULL: "app-server" */
	long long serial_hwm;               /* highest serial accepted so far; 0: none */
	const char *installed_version;      /* NULL or "": nothing installed */
	int64_t now_ms;                     /* wall clock, ms since the epoch */
	const char *machine_id;             /* machineid_get() */
	const char *target;                 /* e.g. "x86_64-linux" */
};

struct manifest {
	enum manifest_reason reason;        /* MR_NONE when accepted */
	int key_index;                      /* which configured key verified */
	int schema;
	char name[MANIFEST_NAME_MAX];
	char version[MANIFEST_VERSION_MAX];
	long long serial;
	int64_t expires_ms;
	int rollout_percent;
	int bucket;                         /* 0..99, this host's */
	int newer;                          /* version > installed (or none installed) */
	struct manifest_artifact server;    /* "<target>" */
	struct manifest_artifact appd;      /* "appd-<target>", present is optional */
};

/*
 * Verify and check a fetched manifest.  `bytes`/`len` are manifest.json
 * exactly as fetched; `sig_text`/`sig_len` the content of
 * manifest.json.sig (sig.h format).  Fills `m` as far as the checks got
 * (m->reason says which rule failed).  0 when accepted; -1 with
 * ERR_REJECTED (and context "reason") otherwise.
 */
int manifest_verify(const char *bytes, size_t len, const char *sig_text, size_t sig_len,
		    const struct manifest_policy *p, struct manifest *m, struct err *e);

/*
 * Parse without the signature or policy (rules 2-3 only, and artifacts
 * for `target`, which may be NULL).  For tools and tests; never trust
 * the result for installing.
 */
int manifest_parse(const char *bytes, size_t len, const char *target,
		   struct manifest *m, struct err *e);

/* Stable name of a reason ("badSignature", …; "" for MR_NONE). */
const char *manifest_reason_name(enum manifest_reason r);

/*
 * Compare versions "X.Y.Z": 1 to 4 dot-separated decimal components
 * (each < 2^63, missing ones count as 0, compared numerically, so
 * 1.10.0 > 1.9.9), an optional "-prerelease" ordered before the release
 * and against other pre-releases by SemVer 2.0.0 §11 rules, and an
 * optional "+build" that is ignored.  `*cmp` gets -1, 0 or 1.  0, or -1
 * (errno EINVAL) when either string is not a version.
 */
int manifest_version_cmp(const char *a, const char *b, int *cmp);

/* The rollout bucket (0..99) of `machine_id` for `version` (see above). */
int manifest_bucket(const char *machine_id, const char *version);

/* 1 when `s` is a valid target / artifact name ([a-z0-9_-], 1..63). */
int manifest_name_ok(const char *s);

/*
 * Streaming check of a download: init with the signed size and SHA-256,
 * update() with each chunk as it is written, final() once the stream
 * ends.  update() fails (ERR_REJECTED, "size") as soon as more than
 * `size` bytes arrive (the excess is not hashed; stop the download);
 * final() fails when fewer arrived ("truncated") or the hash differs
 * ("sha256").  Caller-owned; no cleanup needed.
 */
struct artifact_check {
	br_sha256_context sha;
	unsigned long long expected_size;
	unsigned long long got;
	unsigned char expected_sha256[SIG_SHA256_LEN];
	int failed;
};

void artifact_check_init(struct artifact_check *c, unsigned long long size,
			 const unsigned char sha256[SIG_SHA256_LEN]);
int artifact_check_update(struct artifact_check *c, const void *buf, size_t n,
			  struct err *e);
int artifact_check_final(struct artifact_check *c, struct err *e);

#endif
