/*
 * cmd_release.c -- `appd release keygen` and `appd release sign`: the
 * publisher's side of the signed manifest (DESIGN.md "Updater"; formats
 * in core/sig.h and core/manifest.h).
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
#include "core/update/sig.h"

#include <bearssl.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RELEASE_MAX_ARTIFACTS 32
#define SERIAL_MAX 9007199254740991LL   /* 2^53 - 1: exact in every JSON reader */

struct rel_artifact {
	char name[MANIFEST_TARGET_MAX];
	char url[MANIFEST_URL_MAX];
	const char *file;
	unsigned char sha256[SIG_SHA256_LEN];
	unsigned long long size;
};

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

/* NAME=URL@FILE: the first '=' ends the name, the last '@' starts the
 * file (URLs may hold '@', artifact names never hold '='). */
static int
parse_artifact_arg(const char *arg, struct rel_artifact *a, struct err *e)
{
	const char *eq = strchr(arg, '='), *at = strrchr(arg, '@');
	size_t n;

	if (eq == NULL || at == NULL || at < eq)
		return err_set(e, ERR_USAGE, "--artifact takes NAME=URL@FILE, not \"%s\"", arg);
	n = (size_t)(eq - arg);
	if (n >= sizeof a->name)
		n = sizeof a->name - 1;
	memcpy(a->name, arg, n);
	a->name[n] = '\0';
	if ((size_t)(eq - arg) >= sizeof a->name || !manifest_name_ok(a->name))
		return err_set(e, ERR_USAGE, "--artifact name \"%.*s\" must be a target like "
		    "x86_64-linux or appd-x86_64-linux ([a-z0-9_-], at most %d characters)",
		    (int)(eq - arg), arg, MANIFEST_TARGET_MAX - 1);
	n = (size_t)(at - eq - 1);
	if (n >= sizeof a->url)
		return err_set(e, ERR_USAGE, "--artifact URL is longer than %d bytes",
		    MANIFEST_URL_MAX - 1);
	memcpy(a->url, eq + 1, n);
	a->url[n] = '\0';
	if (strncmp(a->url, "https://", 8) != 0 || a->url[8] == '\0' ||
	    strpbrk(a->url, " \t\r\n") != NULL)
		return err_set(e, ERR_USAGE, "--artifact URL must be https://…, not \"%s\"",
		    a->url);
	a->file = at + 1;
	if (a->file[0] == '\0')
		return err_set(e, ERR_USAGE, "--artifact %s has no FILE after '@'", a->name);
	return 0;
}

/* SHA-256 and size of a regular file, streamed. */
static int
hash_file(struct rel_artifact *a, struct err *e)
{
	if (sig_file_sha256(a->file, a->sha256, &a->size) == 0)
		return 0;
	err_ctx_str(e, "path", a->file);
	if (errno == EINVAL)
		return err_set(e, ERR_IO, "artifact %s is not a regular file", a->file);
	return err_sys(e, ERR_IO, "cannot read artifact %s", a->file);
}

static int
by_name(const void *x, const void *y)
{
	return strcmp(((const struct rel_artifact *)x)->name,
	    ((const struct rel_artifact *)y)->name);
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

static int
release_sign(int argc, char **argv)
{
	static struct rel_artifact arts[RELEASE_MAX_ARTIFACTS];
	static char js[MANIFEST_MAX_BYTES + 1];
	static struct manifest check;
	const char *key = NULL, *name = "app-server", *version = NULL, *serial_s = NULL;
	const char *expires = NULL, *rollout_s = NULL, *dir = NULL, **slot;
	char mpath[PATH_MAX], spath[PATH_MAX], sigtext[SIG_HEX_MAX + 2];
	char hex[2 * SIG_SHA256_LEN + 1], pkhex[SIG_PUB_HEX_LEN + 1];
	unsigned char sig[SIG_MAX_LEN];
	long long serial, rollout = 100;
	int64_t expires_ms;
	struct sig_privkey sk;
	struct sig_pubkey pk;
	struct jsonw w;
	struct stat st;
	struct err e;
	struct out o;
	size_t siglen;
	int i, nart = 0, cmp, rc;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		slot = strcmp(a, "--key") == 0 ? &key :
		    strcmp(a, "--name") == 0 ? &name :
		    strcmp(a, "--version") == 0 ? &version :
		    strcmp(a, "--serial") == 0 ? &serial_s :
		    strcmp(a, "--expires") == 0 ? &expires :
		    strcmp(a, "--rollout") == 0 ? &rollout_s :
		    strcmp(a, "--out") == 0 ? &dir : NULL;
		if (slot != NULL) {
			if ((*slot = need_arg(argc, argv, &i, &e)) == NULL)
				return out_fail(&e);
		} else if (strcmp(a, "--artifact") == 0) {
			const char *v = need_arg(argc, argv, &i, &e);

			if (v == NULL)
				return out_fail(&e);
			if (nart == RELEASE_MAX_ARTIFACTS) {
				err_set(&e, ERR_USAGE, "at most %d --artifact options",
				    RELEASE_MAX_ARTIFACTS);
				return out_fail(&e);
			}
			if (parse_artifact_arg(v, &arts[nart], &e) < 0)
				return out_fail(&e);
			for (int k = 0; k < nart; k++)
				if (strcmp(arts[k].name, arts[nart].name) == 0) {
					err_set(&e, ERR_USAGE, "--artifact %s is given twice",
					    arts[nart].name);
					return out_fail(&e);
				}
			nart++;
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to release sign", a);
			return out_fail(&e);
		}
	}

	/* check every argument before touching the key or any file */
	if (key == NULL || version == NULL || serial_s == NULL || expires == NULL ||
	    dir == NULL || nart == 0) {
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
	if (parse_int_arg("--serial", serial_s, 1, SERIAL_MAX, &serial, &e) < 0 ||
	    (rollout_s != NULL &&
	    parse_int_arg("--rollout", rollout_s, 0, 100, &rollout, &e) < 0))
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
	if (str_fmt(mpath, sizeof mpath, "%s/manifest.json", dir) < 0 ||
	    str_fmt(spath, sizeof spath, "%s/manifest.json.sig", dir) < 0) {
		err_set(&e, ERR_USAGE, "--out path is too long");
		return out_fail(&e);
	}

	for (i = 0; i < nart; i++)
		if (hash_file(&arts[i], &e) < 0)
			return out_fail(&e);
	qsort(arts, (size_t)nart, sizeof arts[0], by_name);

	jsonw_init(&w, js, sizeof js);
	jsonw_obj_begin(&w);
	jsonw_kint(&w, "schema", MANIFEST_SCHEMA);
	jsonw_kstr(&w, "name", name);
	jsonw_kstr(&w, "version", version);
	jsonw_kint(&w, "serial", serial);
	jsonw_kstr(&w, "expires", expires);
	jsonw_kint(&w, "rolloutPercent", rollout);
	jsonw_key(&w, "artifacts");
	jsonw_obj_begin(&w);
	for (i = 0; i < nart; i++) {
		jsonw_key(&w, arts[i].name);
		jsonw_obj_begin(&w);
		jsonw_kstr(&w, "url", arts[i].url);
		hex_encode(arts[i].sha256, SIG_SHA256_LEN, hex);
		jsonw_kstr(&w, "sha256", hex);
		jsonw_kint(&w, "size", (long long)arts[i].size);
		jsonw_obj_end(&w);
	}
	jsonw_obj_end(&w);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0 || w.len > MANIFEST_MAX_BYTES) {
		err_set(&e, ERR_USAGE, "manifest would be larger than %d bytes",
		    MANIFEST_MAX_BYTES);
		return out_fail(&e);
	}
	/* what we write must be what appd reads */
	if (manifest_parse(js, w.len, NULL, &check, &e) < 0)
		return out_fail(&e);

	if (sig_privkey_load(key, &sk, &e) < 0)
		return out_fail(&e);
	rc = sig_pubkey_of(&sk, &pk, &e);
	if (rc == 0)
		rc = sig_sign(&sk, js, w.len, sig, &siglen, &e);
	compat_wipe(&sk, sizeof sk);
	if (rc < 0)
		return out_fail(&e);
	sig_text_format(sig, siglen, sigtext);

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		err_ctx_str(&e, "path", dir);
		err_sys(&e, ERR_IO, "cannot create directory %s", dir);
		return out_fail(&e);
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		err_ctx_str(&e, "path", dir);
		err_set(&e, ERR_IO, "%s is not a directory", dir);
		return out_fail(&e);
	}
	if (fs_write_atomic(mpath, js, w.len, 0644) < 0) {
		err_ctx_str(&e, "path", mpath);
		err_sys(&e, ERR_IO, "cannot write %s", mpath);
		return out_fail(&e);
	}
	if (fs_write_atomic(spath, sigtext, strlen(sigtext), 0644) < 0) {
		err_ctx_str(&e, "path", spath);
		err_sys(&e, ERR_IO, "cannot write %s", spath);
		return out_fail(&e);
	}

	sig_pubkey_hex(&pk, pkhex);
	out_begin(&o, "signed");
	out_abs_path(&o, "manifest", mpath);
	out_abs_path(&o, "signature", spath);
	jsonw_kstr(&o.w, "version", version);
	jsonw_kint(&o.w, "serial", serial);
	jsonw_kstr(&o.w, "publicKey", pkhex);
	jsonw_key(&o.w, "artifacts");
	jsonw_arr_begin(&o.w);
	for (i = 0; i < nart; i++)
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
