/*
 * cmd_release.c -- `appd release keygen` and `appd release sign`: the
 * publisher's side of the signed manifest (DESIGN.md "Updater"; formats
 * in core/update/sig.h and core/update/manifest.h; the work is
 * core/update/release.h's).
 *
 *   appd release keygen --out KEY
 *       new P-256 key; KEY gets the private scalar (0600, never
 *       overwritten); prints {"status":"created","publicKey":"<130 hex>",
 *       "keyPath":"/abs/KEY"}; the public key is the form settings take.
 *   appd release sign --key KEY [--name N] --version V --serial S
 *                     --expires T [--rollout P]
 *                     --artifact NAME=URL@FILE ... --out DIR
 *       NAME is a target ("x86_64-linux") for the app-server build or
 *       "appd-<target>" for appd itself; FILE is hashed and measured here.
 *       Writes DIR/manifest.json (compact, members in a fixed order,
 *       artifacts sorted by name) and DIR/manifest.json.sig (hex of the
 *       DER ECDSA signature over SHA-256 of the exact bytes), each
 *       atomically, and prints {"status":"signed","manifest":…,
 *       "signature":…,"version":…,"serial":…,"publicKey":…,"artifacts":[…]}.
 *
 * Usage errors exit 2; unreadable keys or files exit 1.
 */
#include "cmd/appd.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"
#include "core/update/manifest.h"
#include "core/update/release.h"
#include "core/update/sig.h"

#include <bearssl.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static const char *
need_arg(int argc, char **argv, int *i, struct err *e)
{
	if (*i + 1 >= argc) {
		err_set(e, ERR_USAGE, "%s needs a value", argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

static void
out_abs_path(struct out *o, const char *key, const char *path)
{
	char abs[PATH_MAX];

	jsonw_kstr(&o->w, key, realpath(path, abs) != NULL ? abs : path);
}

static int
release_keygen(int argc, char **argv)
{
	struct sig_privkey sk;
	struct sig_pubkey pk;
	char hex[SIG_PUB_HEX_LEN + 1];
	const char *path = NULL;
	struct err e;
	struct out o;
	int i, rc;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--out") == 0) {
			if ((path = need_arg(argc, argv, &i, &e)) == NULL)
				return out_fail(&e);
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to release keygen",
			    argv[i]);
			return out_fail(&e);
		}
	}
	if (path == NULL || path[0] == '\0') {
		err_set(&e, ERR_USAGE, "release keygen needs --out KEY");
		return out_fail(&e);
	}
	rc = sig_keygen(&sk, &pk, &e);
	if (rc == 0)
		rc = sig_privkey_save(path, &sk, &e);
	compat_wipe(&sk, sizeof sk);
	if (rc < 0)
		return out_fail(&e);
	sig_pubkey_hex(&pk, hex);
	out_begin(&o, "created");
	jsonw_kstr(&o.w, "publicKey", hex);
	out_abs_path(&o, "keyPath", path);
	jsonw_kstr(&o.w, "cliVersion", APPD_VERSION);
	return out_end(&o);
}

static int
parse_int_arg(const char *flag, const char *val, long long lo, long long hi,
	      long long *out, struct err *e)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(val, &end, 10);
	if (errno || *end || end == val || v < lo || v > hi)
		return err_set(e, ERR_USAGE, "%s takes an integer from %lld to %lld, not \"%s\"",
		    flag, lo, hi, val);
	*out = v;
	return 0;
}

struct sign_args {
	const char *key, *name, *version, *serial_s, *expires, *rollout_s, *dir;
};

/* The options of `release sign` into `a` and the artifacts into `r`. */
static int
sign_options(int argc, char **argv, struct sign_args *a, struct release_spec *r,
    struct err *e)
{
	const char **slot;
	int i;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];

		slot = strcmp(o, "--key") == 0 ? &a->key :
		    strcmp(o, "--name") == 0 ? &a->name :
		    strcmp(o, "--version") == 0 ? &a->version :
		    strcmp(o, "--serial") == 0 ? &a->serial_s :
		    strcmp(o, "--expires") == 0 ? &a->expires :
		    strcmp(o, "--rollout") == 0 ? &a->rollout_s :
		    strcmp(o, "--out") == 0 ? &a->dir : NULL;
		if (slot != NULL) {
			if ((*slot = need_arg(argc, argv, &i, e)) == NULL)
				return -1;
		} else if (strcmp(o, "--artifact") == 0) {
			const char *v = need_arg(argc, argv, &i, e);

			if (v == NULL)
				return -1;
			if (r->nart == RELEASE_MAX_ARTIFACTS)
				return err_set(e, ERR_USAGE, "at most %d --artifact options",
				    RELEASE_MAX_ARTIFACTS);
			if (release_artifact_parse(v, &r->art[r->nart], e) < 0)
				return -1;
			for (int k = 0; k < r->nart; k++)
				if (strcmp(r->art[k].name, r->art[r->nart].name) == 0)
					return err_set(e, ERR_USAGE, "--artifact %s is given twice",
					    r->art[r->nart].name);
			r->nart++;
		} else {
			return err_set(e, ERR_USAGE, "unknown argument \"%s\" to release sign", o);
		}
	}
	return 0;
}

static int
release_sign(int argc, char **argv)
{
	static struct release_artifact arts[RELEASE_MAX_ARTIFACTS];
	char mpath[PATH_MAX], spath[PATH_MAX], pkhex[SIG_PUB_HEX_LEN + 1];
	struct sign_args a = { NULL, "app-server", NULL, NULL, NULL, NULL, NULL };
	const char *key, *name, *version, *expires, *dir;
	struct release_spec r;
	int64_t expires_ms;
	struct err e;
	struct out o;
	int i, cmp;

	err_clear(&e);
	memset(&r, 0, sizeof r);
	r.art = arts;
	r.rollout = 100;
	if (sign_options(argc, argv, &a, &r, &e) < 0)
		return out_fail(&e);
	key = a.key;
	name = a.name;
	version = a.version;
	expires = a.expires;
	dir = a.dir;

	/* check every argument before touching the key or any file */
	if (key == NULL || version == NULL || a.serial_s == NULL || expires == NULL ||
	    dir == NULL || r.nart == 0) {
		err_set(&e, ERR_USAGE, "release sign needs --key KEY --version V --serial S "
		    "--expires T --artifact NAME=URL@FILE... --out DIR");
		return out_fail(&e);
	}
	if (!manifest_name_ok(name)) {
		err_set(&e, ERR_USAGE, "--name must be [a-z0-9_-], 1 to %d characters",
		    MANIFEST_NAME_MAX - 1);
		return out_fail(&e);
	}
	if (strlen(version) >= MANIFEST_VERSION_MAX ||
	    manifest_version_cmp(version, version, &cmp) < 0) {
		err_set(&e, ERR_USAGE, "--version must be a version like 1.4.2, not \"%s\"",
		    version);
		return out_fail(&e);
	}
	if (parse_int_arg("--serial", a.serial_s, 1, RELEASE_SERIAL_MAX, &r.serial, &e) < 0 ||
	    (a.rollout_s != NULL &&
	    parse_int_arg("--rollout", a.rollout_s, 0, 100, &r.rollout, &e) < 0))
		return out_fail(&e);
	expires_ms = iso8601_parse(expires);
	if (expires_ms < 0) {
		err_set(&e, ERR_USAGE, "--expires takes a UTC time like 2026-12-31T00:00:00Z, "
		    "not \"%s\"", expires);
		return out_fail(&e);
	}
	if (expires_ms <= wall_ms()) {
		err_set(&e, ERR_USAGE, "--expires %s is in the past", expires);
		return out_fail(&e);
	}
	r.name = name;
	r.version = version;
	r.expires = expires;
	if (release_publish(&r, key, dir, mpath, spath, pkhex, &e) < 0)
		return out_fail(&e);

	out_begin(&o, "signed");
	out_abs_path(&o, "manifest", mpath);
	out_abs_path(&o, "signature", spath);
	jsonw_kstr(&o.w, "version", version);
	jsonw_kint(&o.w, "serial", r.serial);
	jsonw_kstr(&o.w, "publicKey", pkhex);
	jsonw_key(&o.w, "artifacts");
	jsonw_arr_begin(&o.w);
	for (i = 0; i < r.nart; i++)
		jsonw_str(&o.w, arts[i].name);
	jsonw_arr_end(&o.w);
	jsonw_kstr(&o.w, "cliVersion", APPD_VERSION);
	return out_end(&o);
}

int
cmd_release(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct err e;

	if (strcmp(sub, "keygen") == 0)
		return release_keygen(argc - 1, argv + 1);
	if (strcmp(sub, "sign") == 0)
		return release_sign(argc - 1, argv + 1);
	err_clear(&e);
	err_set(&e, ERR_USAGE, "release needs a subcommand: keygen --out KEY, or sign "
	    "--key KEY --version V --serial S --expires T --artifact NAME=URL@FILE... "
	    "--out DIR");
	return out_fail(&e);
}
