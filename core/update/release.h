/*
 * release.h -- the publisher's side of a signed release (DESIGN.md
 * "Updater"): build the manifest, sign it, write both files.  What
 * `appd release sign` runs; the manifest format is core/update/manifest.h's,
 * the signature core/update/sig.h's.
 */
#ifndef APPD_RELEASE_H
#define APPD_RELEASE_H

#include "core/base/err.h"
#include "core/update/manifest.h"
#include "core/update/sig.h"

#define RELEASE_MAX_ARTIFACTS 32
#define RELEASE_SERIAL_MAX 9007199254740991LL   /* 2^53 - 1: exact in every JSON reader */

struct release_artifact {
	char name[MANIFEST_TARGET_MAX];      /* a target, or "appd-<target>" */
	char url[MANIFEST_URL_MAX];
	const char *file;                    /* hashed and measured by release_publish */
	unsigned char sha256[SIG_SHA256_LEN];
	unsigned long long size;
};

struct release_spec {
	const char *name, *version, *expires;   /* expires: ISO-8601 UTC as given */
	long long serial, rollout;
	struct release_artifact *art;           /* sorted by name in place */
	int nart;
};

/* Parse "NAME=URL@FILE" (the first '=' ends the name, the last '@'
 * starts the file: URLs may hold '@', names never hold '=').  `a->file`
 * points into `arg`.  0, or -1 with ERR_USAGE naming what is wrong. */
int release_artifact_parse(const char *arg, struct release_artifact *a, struct err *e);

/*
 * Hash every artifact's file, write the manifest JSON into `out` (`cap`
 * bytes; compact, members in a fixed order, artifacts sorted by name) and
 * check that appd reads it back (manifest_parse).  The length, or -1:
 * ERR_IO for an unreadable artifact, ERR_USAGE when it would exceed
 * MANIFEST_MAX_BYTES or does not parse.
 */
int manifest_write(struct release_spec *r, char *out, size_t cap, struct err *e);

/*
 * The whole release: manifest_write, sign it with the private key at
 * `key_path`, create `dir` (0755) if needed, and write dir/manifest.json
 * and dir/manifest.json.sig atomically.  `mpath`/`spath` (PATH_MAX bytes)
 * get the two paths and `pkhex` the signing public key.  0, or -1 (`e`).
 * The private key is wiped from memory before returning.
 */
int release_publish(struct release_spec *r, const char *key_path, const char *dir,
		    char *mpath, char *spath, char pkhex[SIG_PUB_HEX_LEN + 1], struct err *e);

#endif
