/* release.c -- see release.h. */
#include "core/update/release.h"
#include "core/base/fsutil.h"
#include "core/base/hex.h"
#include "core/base/jsonw.h"
#include "platform/compat.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int
release_artifact_parse(const char *arg, struct release_artifact *a, struct err *e)
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
hash_file(struct release_artifact *a, struct err *e)
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
	return strcmp(((const struct release_artifact *)x)->name,
	    ((const struct release_artifact *)y)->name);
}

int
manifest_write(struct release_spec *r, char *out, size_t cap, struct err *e)
{
	static struct manifest check;
	char hex[2 * SIG_SHA256_LEN + 1];
	struct jsonw w;

	for (int i = 0; i < r->nart; i++)
		if (hash_file(&r->art[i], e) < 0)
			return -1;
	qsort(r->art, (size_t)r->nart, sizeof r->art[0], by_name);
	jsonw_init(&w, out, cap);
	jsonw_obj_begin(&w);
	jsonw_kint(&w, "schema", MANIFEST_SCHEMA);
	jsonw_kstr(&w, "name", r->name);
	jsonw_kstr(&w, "version", r->version);
	jsonw_kint(&w, "serial", r->serial);
	jsonw_kstr(&w, "expires", r->expires);
	jsonw_kint(&w, "rolloutPercent", r->rollout);
	jsonw_key(&w, "artifacts");
	jsonw_obj_begin(&w);
	for (int i = 0; i < r->nart; i++) {
		jsonw_key(&w, r->art[i].name);
		jsonw_obj_begin(&w);
		jsonw_kstr(&w, "url", r->art[i].url);
		hex_encode(r->art[i].sha256, SIG_SHA256_LEN, hex);
		jsonw_kstr(&w, "sha256", hex);
		jsonw_kint(&w, "size", (long long)r->art[i].size);
		jsonw_obj_end(&w);
	}
	jsonw_obj_end(&w);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0 || w.len > MANIFEST_MAX_BYTES)
		return err_set(e, ERR_USAGE, "manifest would be larger than %d bytes",
		    MANIFEST_MAX_BYTES);
	/* what we write must be what appd reads */
	if (manifest_parse(out, w.len, NULL, &check, e) < 0)
		return -1;
	return (int)w.len;
}

static int
write_file(const char *path, const void *data, size_t n, struct err *e)
{
	if (fs_write_atomic(path, data, n, 0644) == 0)
		return 0;
	err_ctx_str(e, "path", path);
	return err_sys(e, ERR_IO, "cannot write %s", path);
}

int
release_publish(struct release_spec *r, const char *key_path, const char *dir,
    char *mpath, char *spath, char pkhex[SIG_PUB_HEX_LEN + 1], struct err *e)
{
	static char js[MANIFEST_MAX_BYTES + 1];
	char sigtext[SIG_HEX_MAX + 2];
	unsigned char sig[SIG_MAX_LEN];
	struct sig_privkey sk;
	struct sig_pubkey pk;
	struct stat st;
	size_t siglen;
	int len, rc;

	if (str_fmt(mpath, PATH_MAX, "%s/manifest.json", dir) < 0 ||
	    str_fmt(spath, PATH_MAX, "%s/manifest.json.sig", dir) < 0)
		return err_set(e, ERR_USAGE, "--out path is too long");
	if ((len = manifest_write(r, js, sizeof js, e)) < 0)
		return -1;
	if (sig_privkey_load(key_path, &sk, e) < 0)
		return -1;
	rc = sig_pubkey_of(&sk, &pk, e);
	if (rc == 0)
		rc = sig_sign(&sk, js, (size_t)len, sig, &siglen, e);
	compat_wipe(&sk, sizeof sk);
	if (rc < 0)
		return -1;
	sig_text_format(sig, siglen, sigtext);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		err_ctx_str(e, "path", dir);
		return err_sys(e, ERR_IO, "cannot create directory %s", dir);
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		err_ctx_str(e, "path", dir);
		return err_set(e, ERR_IO, "%s is not a directory", dir);
	}
	if (write_file(mpath, js, (size_t)len, e) < 0 ||
	    write_file(spath, sigtext, strlen(sigtext), e) < 0)
		return -1;
	sig_pubkey_hex(&pk, pkhex);
	return 0;
}
