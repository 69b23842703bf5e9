/* manifest.c -- see manifest.h. */
#include "core/update/manifest.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "platform/target.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const reason_names[] = {
	[MR_NONE] = "",
	[MR_SIGNATURE] = "badSignature",
	[MR_INVALID] = "invalidManifest",
	[MR_SCHEMA] = "schema",
	[MR_NAME] = "name",
	[MR_SERIAL] = "serialReplay",
	[MR_EXPIRED] = "expired",
	[MR_VERSION] = "olderVersion",
	[MR_ROLLOUT] = "notInRollout",
	[MR_TARGET] = "noArtifact",
};

const char *
manifest_reason_name(enum manifest_reason r)
{
	if ((unsigned)r >= sizeof reason_names / sizeof reason_names[0])
		return "";
	return reason_names[r];
}

/* ---- versions ---------------------------------------------------------- */

struct ver {
	unsigned long long n[4];
	const char *pre;        /* pre-release identifiers, or NULL */
	size_t prelen;
};

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_ident_char(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Dot-separated non-empty identifiers of [0-9A-Za-z-] in s[0..n). */
static int
idents_ok(const char *s, size_t n)
{
	size_t i, run = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (run == 0)
				return 0;
			run = 0;
		} else if (is_ident_char(s[i])) {
			run++;
		} else {
			return 0;
		}
	}
	return run > 0;
}

static int
ver_parse(const char *s, struct ver *v)
{
	int k = 0;

	memset(v, 0, sizeof *v);
	for (;;) {
		unsigned long long x = 0;
		int digits = 0;

		if (k == 4)
			return -1;
		while (is_digit(*s)) {
			if (x > (unsigned long long)(LLONG_MAX - 9) / 10)
				return -1;
			x = x * 10 + (unsigned long long)(*s++ - '0');
			digits++;
		}
		if (digits == 0)
			return -1;
		v->n[k++] = x;
		if (*s != '.')
			break;
		s++;
	}
	if (*s == '-') {
		const char *plus = strchr(++s, '+');

		v->pre = s;
		v->prelen = plus ? (size_t)(plus - s) : strlen(s);
		if (!idents_ok(v->pre, v->prelen))
			return -1;
		s += v->prelen;
	}
	if (*s == '+') {
		s++;
		if (!idents_ok(s, strlen(s)))
			return -1;
		s += strlen(s);
	}
	return *s == '\0' ? 0 : -1;
}

static int
cmp3(int lt, int gt)
{
	return lt ? -1 : gt ? 1 : 0;
}

/* SemVer 2.0.0 §11.4: identifiers left to right; numeric ones compare
 * numerically and sort before alphanumeric ones; a longer list wins a
 * tie. */
static int
pre_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	while (an > 0 && bn > 0) {
		size_t la = 0, lb = 0, i;
		int na = 1, nb = 1, c;

		while (la < an && a[la] != '.')
			na &= is_digit(a[la++]);
		while (lb < bn && b[lb] != '.')
			nb &= is_digit(b[lb++]);
		if (na && nb) {
			size_t ia = 0, ib = 0;

			while (ia + 1 < la && a[ia] == '0')
				ia++;
			while (ib + 1 < lb && b[ib] == '0')
				ib++;
			if (la - ia != lb - ib)
				return cmp3(la - ia < lb - ib, 1);
			c = memcmp(a + ia, b + ib, la - ia);
		} else if (na != nb) {
			return na ? -1 : 1;
		} else {
			c = memcmp(a, b, la < lb ? la : lb);
			if (c == 0)
				c = cmp3(la < lb, la > lb);
		}
		if (c != 0)
			return c < 0 ? -1 : 1;
		i = la < an ? la + 1 : la;
		a += i;
		an -= i;
		i = lb < bn ? lb + 1 : lb;
		b += i;
		bn -= i;
	}
	return cmp3(an < bn, an > bn);
}

int
manifest_version_cmp(const char *a, const char *b, int *cmp)
{
	struct ver va, vb;
	int k;

	if (ver_parse(a, &va) < 0 || ver_parse(b, &vb) < 0) {
		errno = EINVAL;
		return -1;
	}
	for (k = 0; k < 4; k++)
		if (va.n[k] != vb.n[k]) {
			*cmp = cmp3(va.n[k] < vb.n[k], 1);
			return 0;
		}
	if (va.pre == NULL || vb.pre == NULL)
		*cmp = cmp3(va.pre != NULL && vb.pre == NULL, va.pre == NULL && vb.pre != NULL);
	else
		*cmp = pre_cmp(va.pre, va.prelen, vb.pre, vb.prelen);
	return 0;
}

/* ---- rollout, names ------------------------------------------------------ */

int
manifest_bucket(const char *machine_id, const char *version)
{
	br_sha256_context c;
	unsigned char h[SIG_SHA256_LEN];
	uint64_t v = 0;
	int i;

	br_sha256_init(&c);
	br_sha256_update(&c, machine_id, strlen(machine_id));
	br_sha256_update(&c, version, strlen(version));
	br_sha256_out(&c, h);
	for (i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (int)(v % 100);
}

int
manifest_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= MANIFEST_TARGET_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

/* ---- parsing ----------------------------------------------------------- */

static int
reject(struct manifest *m, struct err *e, enum manifest_reason r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
reject(struct manifest *m, struct err *e, enum manifest_reason r, const char *fmt, ...)
{
	char msg[sizeof e->msg];
	va_list ap;

	va_start(ap, fmt);
	fmt_v(msg, sizeof msg, fmt, ap);
	va_end(ap);
	m->reason = r;
	err_ctx_str(e, "reason", manifest_reason_name(r));
	return err_set(e, ERR_REJECTED, "%s", msg);
}

/* 1 when object `obj` has a key twice (so no two parsers can disagree
 * about which one counts). */
static int
url_ok(const char *u)
{
	const unsigned char *p = (const unsigned char *)u;

	if (strncmp(u, "https://", 8) != 0 || u[8] == '\0')
		return 0;
	for (; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int
parse_artifact(const struct jsonr *r, int obj, const char *aname,
	       struct manifest_artifact *a, struct manifest *m, struct err *e)
{
	char hex[2 * SIG_SHA256_LEN + 2];
	long long size;
	size_t n;

	if (jsonr_type(r, obj) != JSMN_OBJECT)
		return reject(m, e, MR_INVALID, "manifest artifact \"%s\" is not an object",
		    aname);
	if (jsonr_str(r, jsonr_get(r, obj, "url"), a->url, sizeof a->url) < 0 ||
	    !url_ok(a->url))
		return reject(m, e, MR_INVALID, "manifest artifact \"%s\": \"url\" must be an "
		    "https:// URL of at most %d bytes", aname, MANIFEST_URL_MAX - 1);
	if (jsonr_str(r, jsonr_get(r, obj, "sha256"), hex, sizeof hex) < 0 ||
	    strlen(hex) != 2 * SIG_SHA256_LEN ||
	    hex_decode(hex, 2 * SIG_SHA256_LEN, a->sha256, sizeof a->sha256, &n) < 0)
		return reject(m, e, MR_INVALID, "manifest artifact \"%s\": \"sha256\" must be "
		    "64 hex characters", aname);
	if (jsonr_int(r, jsonr_get(r, obj, "size"), &size) < 0 || size < 0)
		return reject(m, e, MR_INVALID, "manifest artifact \"%s\": \"size\" must be a "
		    "byte count", aname);
	a->size = (unsigned long long)size;
	a->present = 1;
	return 0;
}

static int
parse_artifacts(const struct jsonr *r, int obj, const char *target,
		struct manifest *m, struct err *e)
{
	char aname[MANIFEST_TARGET_MAX], appd_name[MANIFEST_TARGET_MAX + 8];
	struct manifest_artifact scratch;
	int i = obj + 1, k;

	if (jsonr_type(r, obj) != JSMN_OBJECT)
		return reject(m, e, MR_INVALID, "manifest \"artifacts\" must be an object");
	appd_name[0] = '\0';
	if (target != NULL)
		str_copy(appd_name, sizeof appd_name, MANIFEST_APPD_PREFIX APPD_TARGET);
	for (k = 0; k < r->tok[obj].size; k++) {
		struct manifest_artifact *a = &scratch;

		if (jsonr_str(r, i, aname, sizeof aname) < 0 || !manifest_name_ok(aname))
			return reject(m, e, MR_INVALID, "manifest artifact names are "
			    "[a-z0-9_-], 1 to %d characters", MANIFEST_TARGET_MAX - 1);
		if (target != NULL && strcmp(aname, target) == 0)
			a = &m->server;
		else if (target != NULL && strcmp(aname, appd_name) == 0)
			a = &m->appd;
		if (parse_artifact(r, i + 1, aname, a, m, e) < 0)
			return -1;
		i = jsonr_skip(r, i + 1);
	}
	return 0;
}

int
manifest_parse(const char *bytes, size_t len, const char *target,
	       struct manifest *m, struct err *e)
{
	jsmntok_t tok[MANIFEST_MAX_TOKENS];
	struct jsonr r;
	char expires[40];
	long long v;
	int i, cmp;

	memset(m, 0, sizeof *m);
	m->key_index = -1;
	if (len > MANIFEST_MAX_BYTES)
		return reject(m, e, MR_INVALID, "manifest is larger than %d bytes",
		    MANIFEST_MAX_BYTES);
	if (jsonr_parse(&r, bytes, len, tok, MANIFEST_MAX_TOKENS) < 0)
		return reject(m, e, MR_INVALID, "manifest is not a JSON object%s",
		    errno == ENOMEM ? " (too many members)" : "");
	{
		char dup[64];
		if (jsonr_dup_key(&r, dup, sizeof dup))
			return reject(m, e, MR_INVALID, "manifest has the member \"%s\" twice "
			    "in one object", dup);
	}
	if (jsonr_int(&r, jsonr_get(&r, 0, "schema"), &v) < 0)
		return reject(m, e, MR_INVALID, "manifest \"schema\" is missing or not a number");
	if (v != MANIFEST_SCHEMA)
		return reject(m, e, MR_SCHEMA, "manifest schema %lld is not supported "
		    "(this appd reads schema %d)", v, MANIFEST_SCHEMA);
	m->schema = (int)v;
	if (jsonr_str(&r, jsonr_get(&r, 0, "name"), m->name, sizeof m->name) < 0 ||
	    m->name[0] == '\0')
		return reject(m, e, MR_INVALID, "manifest \"name\" is missing or not a string "
		    "of at most %d bytes", MANIFEST_NAME_MAX - 1);
	if (jsonr_str(&r, jsonr_get(&r, 0, "version"), m->version, sizeof m->version) < 0 ||
	    manifest_version_cmp(m->version, m->version, &cmp) < 0)
		return reject(m, e, MR_INVALID, "manifest \"version\" is missing or not a "
		    "version like 1.4.2");
	if (jsonr_int(&r, jsonr_get(&r, 0, "serial"), &m->serial) < 0 || m->serial < 1)
		return reject(m, e, MR_INVALID, "manifest \"serial\" is missing or not a "
		    "positive integer");
	if (jsonr_str(&r, jsonr_get(&r, 0, "expires"), expires, sizeof expires) < 0 ||
	    (m->expires_ms = iso8601_parse(expires)) < 0)
		return reject(m, e, MR_INVALID, "manifest \"expires\" is missing or not a UTC "
		    "time like 2026-12-31T00:00:00Z");
	m->rollout_percent = 100;
	i = jsonr_get(&r, 0, "rolloutPercent");
	if (i >= 0) {
		if (jsonr_int(&r, i, &v) < 0 || v < 0 || v > 100)
			return reject(m, e, MR_INVALID, "manifest \"rolloutPercent\" must be "
			    "an integer from 0 to 100");
		m->rollout_percent = (int)v;
	}
	i = jsonr_get(&r, 0, "artifacts");
	if (i < 0)
		return reject(m, e, MR_INVALID, "manifest \"artifacts\" is missing");
	return parse_artifacts(&r, i, target, m, e);
}

/* ---- verification ----------------------------------------------------- */

int
manifest_verify(const char *bytes, size_t len, const char *sig_text, size_t sig_len,
		const struct manifest_policy *p, struct manifest *m, struct err *e)
{
	const char *want_name = p->name != NULL ? p->name : "app-server";
	const char *inst = p->installed_version;
	char when[32];
	unsigned char sig[SIG_MAX_LEN];
	size_t siglen;
	int key, cmp;

	memset(m, 0, sizeof *m);
	m->key_index = -1;
	if (sig_text_parse(sig_text, sig_len, sig, &siglen, e) < 0 ||
	    (key = sig_verify(p->keys, p->nkeys, bytes, len, sig, siglen, e)) < 0) {
		m->reason = MR_SIGNATURE;
		err_ctx_str(e, "reason", manifest_reason_name(MR_SIGNATURE));
		return -1;
	}
	if (manifest_parse(bytes, len, p->target, m, e) < 0)
		return -1;
	m->key_index = key;
	if (strcmp(m->name, want_name) != 0)
		return reject(m, e, MR_NAME, "manifest is for \"%s\", not \"%s\"",
		    m->name, want_name);
	if (m->serial <= p->serial_hwm) {
		err_ctx_num(e, "serial", m->serial);
		err_ctx_num(e, "highWaterMark", p->serial_hwm);
		return reject(m, e, MR_SERIAL, "manifest serial %lld is not above %lld, the "
		    "highest already accepted (replayed or stale manifest)",
		    m->serial, p->serial_hwm);
	}
	if (p->now_ms >= m->expires_ms) {
		iso8601_ms(m->expires_ms, when);
		err_ctx_str(e, "expires", when);
		return reject(m, e, MR_EXPIRED, "manifest expired at %s", when);
	}
	m->newer = 1;
	if (inst != NULL && inst[0] != '\0') {
		if (manifest_version_cmp(m->version, inst, &cmp) < 0)
			cmp = 1;    /* an unparseable installed version never blocks */
		if (cmp < 0) {
			err_ctx_str(e, "version", m->version);
			err_ctx_str(e, "installedVersion", inst);
			return reject(m, e, MR_VERSION, "manifest version %s is older than the "
			    "installed %s", m->version, inst);
		}
		m->newer = cmp > 0;
	}
	m->bucket = manifest_bucket(p->machine_id != NULL ? p->machine_id : "", m->version);
	if (m->bucket >= m->rollout_percent) {
		err_ctx_num(e, "bucket", m->bucket);
		err_ctx_num(e, "rolloutPercent", m->rollout_percent);
		return reject(m, e, MR_ROLLOUT, "this host (bucket %d) is not in the %d%% "
		    "rollout of %s", m->bucket, m->rollout_percent, m->version);
	}
	if (!m->server.present) {
		err_ctx_str(e, "target", p->target != NULL ? p->target : "");
		return reject(m, e, MR_TARGET, "manifest has no artifact for target \"%s\"",
		    p->target != NULL ? p->target : "");
	}
	m->reason = MR_NONE;
	return 0;
}

/* ---- streaming artifact check ------------------------------------------- */

void
artifact_check_init(struct artifact_check *c, unsigned long long size,
		    const unsigned char sha256[SIG_SHA256_LEN])
{
	br_sha256_init(&c->sha);
	c->expected_size = size;
	c->got = 0;
	memcpy(c->expected_sha256, sha256, SIG_SHA256_LEN);
	c->failed = 0;
}

int
artifact_check_update(struct artifact_check *c, const void *buf, size_t n,
		      struct err *e)
{
	if (c->failed || n > c->expected_size - c->got) {
		c->failed = 1;
		err_ctx_str(e, "reason", "size");
		err_ctx_num(e, "size", (long long)c->expected_size);
		return err_set(e, ERR_REJECTED, "artifact is larger than its signed size "
		    "of %llu bytes", c->expected_size);
	}
	br_sha256_update(&c->sha, buf, n);
	c->got += n;
	return 0;
}

int
artifact_check_final(struct artifact_check *c, struct err *e)
{
	unsigned char h[SIG_SHA256_LEN];
	char want[2 * SIG_SHA256_LEN + 1], got[2 * SIG_SHA256_LEN + 1];

	if (c->failed)
		return err_set(e, ERR_REJECTED, "artifact check already failed");
	if (c->got != c->expected_size) {
		c->failed = 1;
		err_ctx_str(e, "reason", "truncated");
		err_ctx_num(e, "size", (long long)c->expected_size);
		err_ctx_num(e, "received", (long long)c->got);
		return err_set(e, ERR_REJECTED, "artifact is truncated: %llu of %llu bytes",
		    c->got, c->expected_size);
	}
	br_sha256_out(&c->sha, h);
	if (memcmp(h, c->expected_sha256, SIG_SHA256_LEN) != 0) {
		c->failed = 1;
		hex_encode(c->expected_sha256, SIG_SHA256_LEN, want);
		hex_encode(h, SIG_SHA256_LEN, got);
		err_ctx_str(e, "reason", "sha256");
		err_ctx_str(e, "sha256", got);
		return err_set(e, ERR_REJECTED, "artifact SHA-256 %s does not match the signed %s",
		    got, want);
	}
	return 0;
}
