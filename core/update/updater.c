/* updater.c -- see updater.h. */
#include "core/update/updater.h"
#include "core/home.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "core/update/sig.h"
#include "core/update/machineid.h"
#include "core/update/trust.h"
#include "platform/compat.h"
#include "platform/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

enum { ST_IDLE, ST_MANIFEST, ST_SIG, ST_SERVER, ST_APPD };

#define UPDSTATE_MAX 8192       /* packages/updater.json */

/* A string of the updater section of the check's settings. */
#define CFG(u, member) settings_str(&(u)->set, (u)->set.upd.member)

/* ---- packages/updater.json ---- */

static void
kstr_opt(struct jsonw *w, const char *k, const char *v)
{
	if (v[0])
		jsonw_kstr(w, k, v);
}

int
updstate_write(const char *path, const struct upd_state *st, struct err *e)
{
	/* mapped for the call: a resident supervisor writes it at every
	 * verdict, and 8 KB kept for that would be 8 KB resident */
	char *buf = compat_map(UPDSTATE_MAX);
	struct jsonw w;
	int n, rc = 0;

	if (buf == NULL)
		return err_sys(e, ERR_IO, "cannot write %s", path);
	jsonw_init(&w, buf, UPDSTATE_MAX);
	jsonw_obj_begin(&w);
	jsonw_kint(&w, "serial", st->serial);
	kstr_opt(&w, "etag", st->etag);
	kstr_opt(&w, "manifestSha256", st->manifest_sha256);
	jsonw_key(&w, "rejectedVersions");
	jsonw_arr_begin(&w);
	for (int i = 0; i < st->nrejected; i++)
		jsonw_str(&w, st->rejected[i]);
	jsonw_arr_end(&w);
	jsonw_kint(&w, "failures", st->failures);
	jsonw_ktime(&w, "lastCheckAt", st->last_check_at);
	kstr_opt(&w, "lastResult", st->last_result);
	kstr_opt(&w, "lastReason", st->last_reason);
	kstr_opt(&w, "lastMessage", st->last_message);
	kstr_opt(&w, "lastVersion", st->last_version);
	kstr_opt(&w, "previousVersion", st->previous_version);
	if (st->last_pid > 0)
		jsonw_kint(&w, "lastPid", st->last_pid);
	jsonw_ktime(&w, "nextCheckAt", st->next_check_at);
	kstr_opt(&w, "requestId", st->request_id);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0) {
		rc = err_set(e, ERR_IO, "updater state too large for %s", path);
	} else {
		n = (int)w.len;
		buf[n++] = '\n';
		if (fs_write_atomic(path, buf, (size_t)n, 0600) < 0) {
			err_ctx_str(e, "path", path);
			rc = err_sys(e, ERR_IO, "cannot write %s", path);
		}
	}
	compat_unmap(buf, UPDSTATE_MAX);
	return rc;
}

static void
rstr(const struct jsonr *r, const char *k, char *out, size_t cap)
{
	int i = jsonr_get(r, 0, k);

	if (i < 0 || jsonr_str(r, i, out, cap) < 0)
		out[0] = '\0';
}

/* updstate_read's text and tokens, mapped for the call (as the write's) */
struct state_scratch {
	char buf[UPDSTATE_MAX];
	jsmntok_t tok[128];
};

static int state_parse(const char *path, const char *buf, size_t len, jsmntok_t *tok,
    struct upd_state *st, struct err *e);

int
updstate_read(const char *path, struct upd_state *st, struct err *e)
{
	struct state_scratch *sc;
	size_t len;
	int rc;

	memset(st, 0, sizeof *st);
	if ((sc = compat_map(sizeof *sc)) == NULL)
		return err_sys(e, ERR_IO, "cannot read %s", path);
	if (fs_read_file(path, sc->buf, sizeof sc->buf, &len) < 0) {
		if (errno == ENOENT) {
			rc = 0;
		} else {
			err_ctx_str(e, "path", path);
			rc = err_sys(e, ERR_IO, "cannot read %s", path);
		}
	} else {
		rc = state_parse(path, sc->buf, len, sc->tok, st, e);
	}
	compat_unmap(sc, sizeof *sc);
	return rc;
}

static int
state_parse(const char *path, const char *buf, size_t len, jsmntok_t *tok,
    struct upd_state *st, struct err *e)
{
	struct jsonr r;
	long long v;
	int a;

	if (jsonr_parse(&r, buf, len, tok, 128) < 0) {
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_IO, "%s is not a JSON object", path);
	}
	if (jsonr_int(&r, jsonr_get(&r, 0, "serial"), &v) == 0)
		st->serial = v;
	if (jsonr_int(&r, jsonr_get(&r, 0, "failures"), &v) == 0 && v >= 0 && v < 64)
		st->failures = (int)v;
	if (jsonr_int(&r, jsonr_get(&r, 0, "lastPid"), &v) == 0)
		st->last_pid = (long)v;
	rstr(&r, "etag", st->etag, sizeof st->etag);
	rstr(&r, "manifestSha256", st->manifest_sha256, sizeof st->manifest_sha256);
	rstr(&r, "lastResult", st->last_result, sizeof st->last_result);
	rstr(&r, "lastReason", st->last_reason, sizeof st->last_reason);
	rstr(&r, "lastMessage", st->last_message, sizeof st->last_message);
	rstr(&r, "lastVersion", st->last_version, sizeof st->last_version);
	rstr(&r, "previousVersion", st->previous_version, sizeof st->previous_version);
	rstr(&r, "requestId", st->request_id, sizeof st->request_id);
	st->last_check_at = jsonr_time(&r, 0, "lastCheckAt");
	st->next_check_at = jsonr_time(&r, 0, "nextCheckAt");
	a = jsonr_get(&r, 0, "rejectedVersions");
	if (a >= 0 && jsonr_type(&r, a) == JSMN_ARRAY)
		for (int k = 0; k < r.tok[a].size && st->nrejected < UPD_REJECTED_MAX; k++)
			if (jsonr_str(&r, jsonr_elem(&r, a, k), st->rejected[st->nrejected],
			    MANIFEST_VERSION_MAX) == 0)
				st->nrejected++;
	return 0;
}

int
updstate_is_rejected(const struct upd_state *st, const char *version)
{
	for (int i = 0; i < st->nrejected; i++)
		if (strcmp(st->rejected[i], version) == 0)
			return 1;
	return 0;
}

void
updstate_add_rejected(struct upd_state *st, const char *version)
{
	if (updstate_is_rejected(st, version))
		return;
	if (st->nrejected == UPD_REJECTED_MAX) {
		memmove(st->rejected[0], st->rejected[1],
		    (UPD_REJECTED_MAX - 1) * sizeof st->rejected[0]);
		st->nrejected--;
	}
	str_copy(st->rejected[st->nrejected++], MANIFEST_VERSION_MAX, version);
}

static const char *const kind_names[] = {
	[UPD_NO_UPDATE] = "noUpdate",
	[UPD_AVAILABLE] = "updateAvailable",
	[UPD_INSTALLED] = "updated",
	[UPD_REJECTED] = "rejected",
};

const char *
upd_kind_name(enum upd_kind k)
{
	return (unsigned)k <= UPD_REJECTED ? kind_names[k] : "rejected";
}

enum upd_kind
updstate_kind(const struct upd_state *st)
{
	for (int k = UPD_NO_UPDATE; k <= UPD_REJECTED; k++)
		if (strcmp(st->last_result, kind_names[k]) == 0)
			return (enum upd_kind)k;
	return UPD_REJECTED;
}

void
updstate_record(struct upd_state *st, enum upd_kind kind, const char *reason,
    const char *version, const char *message)
{
	str_copy(st->last_result, sizeof st->last_result, upd_kind_name(kind));
	str_copy(st->last_reason, sizeof st->last_reason, reason ? reason : "");
	str_copy(st->last_version, sizeof st->last_version, version ? version : "");
	str_copy(st->last_message, sizeof st->last_message, message ? message : "");
	st->last_check_at = wall_ms();
	if (kind == UPD_REJECTED)
		st->failures++;
	else
		st->failures = 0;
}

/* ---- the check ---- */

static void step_fetch(struct updater *u);

static void
finish(struct updater *u, enum upd_kind kind)
{
	if (u->tmp_fd >= 0) {
		close(u->tmp_fd);
		u->tmp_fd = -1;
	}
	if (u->tmp_path[0]) {
		unlink(u->tmp_path);
		u->tmp_path[0] = '\0';
	}
	u->res.kind = kind;
	u->active = 0;
	u->step = ST_IDLE;
	u->done(u, &u->res, u->arg);
}

static const char *
ac_reason(const struct err *e)
{
	for (int i = 0; i < e->nctx; i++)
		if (strcmp(e->ctx[i].key, "reason") == 0)
			return e->ctx[i].str;
	return "";
}

static void
reject(struct updater *u, const char *reason, const struct err *why)
{
	str_copy(u->res.reason, sizeof u->res.reason, reason);
	if (why && why != &u->res.err)
		u->res.err = *why;
	if (u->res.err.code == ERR_NONE)
		err_set(&u->res.err, ERR_REJECTED, "update rejected (%s)", reason);
	u->res.err.code = ERR_REJECTED;
	if (strcmp(ac_reason(&u->res.err), reason) != 0)
		err_ctx_str(&u->res.err, "reason", reason);
	finish(u, UPD_REJECTED);
}

static void
on_deferred(struct reactor *r, int h, int ev, void *arg)
{
	struct updater *u = arg;

	char why[sizeof u->res.reason];

	(void)r; (void)h; (void)ev;
	str_copy(why, sizeof why, u->res.reason);
	reject(u, why, NULL);
}

static const char *
fetch_reason(enum https_fail f)
{
	switch (f) {
	case HTTPS_E_NAME: return "certificateName";
	case HTTPS_E_UNTRUSTED: return "untrustedCertificate";
	case HTTPS_E_EXPIRED: return "expiredCertificate";
	default: return https_fail_name(f);
	}
}

static int
on_mem_body(void *arg, const void *buf, size_t len)
{
	struct updater *u = arg;
	char *dst = u->step == ST_MANIFEST ? u->mbuf : u->sbuf;
	size_t *n = u->step == ST_MANIFEST ? &u->mlen : &u->slen;
	size_t cap = u->step == ST_MANIFEST ? sizeof u->mbuf : sizeof u->sbuf;

	if (*n + len > cap)
		return -1;      /* body_max stops it first */
	memcpy(dst + *n, buf, len);
	*n += len;
	return 0;
}

static int
on_file_body(void *arg, const void *buf, size_t len)
{
	struct updater *u = arg;

	if (artifact_check_update(&u->ac, buf, len, &u->ac_err) < 0) {
		u->ac_failed = 1;
		return -1;
	}
	if (fd_write_all(u->tmp_fd, buf, len) < 0) {
		err_sys(&u->ac_err, ERR_IO, "cannot write %s", u->tmp_path);
		u->ac_failed = 2;
		return -1;
	}
	return 0;
}

/* The manifest and its signature are in: decide. */
static void
decide(struct updater *u)
{
	struct manifest_policy p;
	struct manifest *m = &u->m;
	unsigned char dig[32];
	char hex[65], mid[MACHINE_ID_MAX];
	struct err e;
	int need_server, need_appd;

	sig_sha256(u->mbuf, u->mlen, dig);
	hex_encode(dig, 32, hex);
	if (u->res.installed[0] && strcmp(hex, u->st.manifest_sha256) == 0) {
		str_copy(u->res.version, sizeof u->res.version, u->res.installed);
		err_set(&u->res.err, ERR_NONE, "the manifest has not changed");
		finish(u, UPD_NO_UPDATE);
		return;
	}
	memset(&p, 0, sizeof p);
	err_clear(&e);
	for (int i = 0; i < u->set.upd.nkeys; i++)
		if (sig_pubkey_parse(CFG(u, keys[i]), &p.keys[p.nkeys], &e) == 0)
			p.nkeys++;
	if (p.nkeys == 0) {
		reject(u, "badSignature", &e);
		return;
	}
	if (machineid_get(u->o.machine_id_fallback, mid, &e) < 0) {
		reject(u, "io", &e);
		return;
	}
	p.name = CFG(u, name);
	p.serial_hwm = u->st.serial;
	p.installed_version = u->res.installed;
	p.now_ms = wall_ms();
	p.machine_id = mid;
	p.target = CFG(u, target);
	if (manifest_verify(u->mbuf, u->mlen, u->sbuf, u->slen, &p, m, &e) < 0) {
		str_copy(u->res.version, sizeof u->res.version, m->version);
		reject(u, manifest_reason_name(m->reason), &e);
		return;
	}
	str_copy(u->res.version, sizeof u->res.version, m->version);
	if (updstate_is_rejected(&u->st, m->version)) {
		err_set(&u->res.err, ERR_NONE, "version %s was rejected on this host before; "
		    "waiting for a newer release", m->version);
		finish(u, UPD_NO_UPDATE);
		return;
	}
	need_server = m->newer;
	need_appd = u->has_self && m->appd.present &&
	    memcmp(m->appd.sha256, u->self_sha, 32) != 0;
	if (!need_server && !need_appd) {
		err_set(&u->res.err, ERR_NONE, "version %s is installed", m->version);
		finish(u, UPD_NO_UPDATE);
		return;
	}
	if (u->o.check_only) {
		err_set(&u->res.err, ERR_NONE, "version %s is available", m->version);
		finish(u, UPD_AVAILABLE);
		return;
	}
	u->step = need_server ? ST_SERVER : ST_APPD;
	step_fetch(u);
}

/* One artifact is in the temp file: check it and install it. */
static void
artifact_done(struct updater *u)
{
	struct err e;
	const struct manifest_artifact *a = u->step == ST_SERVER ? &u->m.server : &u->m.appd;

	err_clear(&e);
	install_fault("after-download");
	if (artifact_check_final(&u->ac, &e) < 0) {
		reject(u, ac_reason(&e)[0] ? ac_reason(&e) : "sha256", &e);
		return;
	}
	if (fsync(u->tmp_fd) < 0) {
		err_sys(&e, ERR_IO, "cannot sync %s", u->tmp_path);
		reject(u, "io", &e);
		return;
	}
	close(u->tmp_fd);
	u->tmp_fd = -1;
	install_fault("after-verify");
	if (u->step == ST_SERVER) {
		str_fmt(u->res.release, sizeof u->res.release, "%s-%s", u->m.version, CFG(u, target));
		if (install_commit(&u->pk, u->res.release, CFG(u, name), u->tmp_path, &e) < 0) {
			u->res.release[0] = '\0';
			reject(u, "io", &e);
			return;
		}
	} else if (install_commit_appd(&u->pk, a->sha256, u->tmp_path, u->res.appd_path,
	    sizeof u->res.appd_path, &e) < 0) {
		reject(u, "io", &e);
		return;
	}
	u->tmp_path[0] = '\0';
	if (u->step == ST_SERVER && u->has_self && u->m.appd.present &&
	    memcmp(u->m.appd.sha256, u->self_sha, 32) != 0) {
		u->step = ST_APPD;
		step_fetch(u);
		return;
	}
	err_set(&u->res.err, ERR_NONE, "installed %s", u->res.release[0] ? u->m.version : "appd");
	finish(u, UPD_INSTALLED);
}

static void
on_fetch_done(struct https_fetch *f, const struct https_result *res, void *arg)
{
	struct updater *u = arg;

	(void)f;
	u->res.bytes += res->bytes;
	u->res.retry_after = res->retry_after;
	if (res->fail == HTTPS_E_ABORTED && u->ac_failed) {
		reject(u, u->ac_failed == 1 && ac_reason(&u->ac_err)[0] ?
		    ac_reason(&u->ac_err) : "io", &u->ac_err);
		return;
	}
	if (res->fail == HTTPS_E_TOO_BIG && (u->step == ST_SERVER || u->step == ST_APPD)) {
		/* body_max is the signed size: more is a size mismatch */
		err_set(&u->res.err, ERR_REJECTED, "%s", res->err.msg);
		reject(u, "size", NULL);
		return;
	}
	if (res->fail != HTTPS_OK) {
		reject(u, fetch_reason(res->fail), &res->err);
		return;
	}
	switch (u->step) {
	case ST_MANIFEST:
		if (res->status == 304) {
			u->res.not_modified = 1;
			str_copy(u->res.version, sizeof u->res.version, u->res.installed);
			err_set(&u->res.err, ERR_NONE, "the manifest has not changed (304)");
			finish(u, UPD_NO_UPDATE);
			return;
		}
		str_copy(u->etag, sizeof u->etag, res->etag);   /* kept only if accepted */
		u->step = ST_SIG;
		step_fetch(u);
		return;
	case ST_SIG:
		decide(u);
		return;
	default:
		artifact_done(u);
		return;
	}
}

static void
step_fetch(struct updater *u)
{
	struct https_request q;
	const struct manifest_artifact *a = NULL;
	struct err e;

	memset(&q, 0, sizeof q);
	q.anchors = u->trust.ta;
	q.nanchors = u->trust.n;
	q.deadline_ms = u->o.fetch_timeout_ms;
	q.done = on_fetch_done;
	q.arg = u;
	err_clear(&e);
	switch (u->step) {
	case ST_MANIFEST:
		q.url = CFG(u, manifest_url);
		q.if_none_match = u->res.installed[0] && u->st.etag[0] ? u->st.etag : NULL;
		q.body_max = MANIFEST_MAX_BYTES;
		q.on_body = on_mem_body;
		break;
	case ST_SIG:
		str_fmt(u->url, sizeof u->url, "%s.sig", CFG(u, manifest_url));
		q.url = u->url;
		q.body_max = sizeof u->sbuf;
		q.on_body = on_mem_body;
		break;
	default:
		a = u->step == ST_SERVER ? &u->m.server : &u->m.appd;
		q.url = a->url;
		q.body_max = a->size ? a->size : 1;
		q.on_body = on_file_body;
		artifact_check_init(&u->ac, a->size, a->sha256);
		u->ac_failed = 0;
		err_clear(&u->ac_err);
		if ((u->tmp_fd = install_tmp_open(&u->pk, u->tmp_path, sizeof u->tmp_path, &e)) < 0) {
			u->tmp_path[0] = '\0';
			reject(u, "io", &e);
			return;
		}
		break;
	}
	if (https_fetch_start(&u->fetch, u->r, &q) < 0)
		reject(u, fetch_reason(u->fetch.res.fail ? u->fetch.res.fail : HTTPS_E_URL), &u->fetch.res.err);
}

int
updater_start(struct updater *u, struct reactor *r, const struct upd_opts *o,
    upd_done_cb *done, void *arg, struct err *e)
{
	struct err le;

	if (u->active)
		return err_set(e, ERR_BUSY, "an update check is already running");
	memset(&u->res, 0, sizeof u->res);
	memset(&u->m, 0, sizeof u->m);
	u->res.retry_after = -1;
	u->r = r;
	u->o = *o;
	u->set = *o->settings;
	u->pk = *o->pk;
	u->has_self = o->self_sha256 != NULL;
	if (u->has_self)
		memcpy(u->self_sha, o->self_sha256, 32);
	u->done = done;
	u->arg = arg;
	u->mlen = u->slen = 0;
	u->etag[0] = '\0';
	u->tmp_fd = -1;
	u->tmp_path[0] = '\0';
	if (CFG(u, manifest_url)[0] == '\0' || u->set.upd.nkeys == 0)
		return err_set(e, ERR_USAGE, "no update source configured (run bootstrap "
		    "with --manifest-url and --public-key)");
	if (updstate_read(u->pk.state, &u->st, e) < 0 || install_prepare(&u->pk, e) < 0)
		return -1;
	if (install_link_version(u->pk.current, CFG(u, target), u->res.installed,
	    sizeof u->res.installed, e) < 0)
		return -1;
	u->active = 1;
	u->step = ST_MANIFEST;
	err_clear(&le);
	if (trust_load_default(&u->trust, CFG(u, ca_file)[0] ? CFG(u, ca_file) : NULL, &le) < 0) {
		str_copy(u->res.reason, sizeof u->res.reason, "trustStore");
		u->res.err = le;
		if (reactor_timer_add(r, 0, on_deferred, u) < 0) {
			u->active = 0;
			return err_sys(e, ERR_IO, "cannot schedule the update check");
		}
		return 0;
	}
	step_fetch(u);
	return 0;
}

void
updater_cancel(struct updater *u)
{
	if (!u->active)
		return;
	https_fetch_cancel(&u->fetch);
	if (u->tmp_fd >= 0)
		close(u->tmp_fd);
	u->tmp_fd = -1;
	if (u->tmp_path[0])
		unlink(u->tmp_path);
	u->tmp_path[0] = '\0';
	u->active = 0;
	u->step = ST_IDLE;
}

int
updater_running(const struct updater *u)
{
	return u->active;
}

void
updater_accept(struct updater *u)
{
	unsigned char dig[32];

	if (u->mlen == 0 || u->m.serial <= 0)
		return;
	u->st.serial = u->m.serial;
	str_copy(u->st.etag, sizeof u->st.etag, u->etag);
	sig_sha256(u->mbuf, u->mlen, dig);
	hex_encode(dig, 32, u->st.manifest_sha256);
}

static void
on_sync_done(struct updater *u, const struct upd_result *res, void *arg)
{
	(void)u; (void)res;
	reactor_stop(arg);
}

int
updater_run_sync(struct updater *u, const struct upd_opts *o, struct err *e)
{
	static struct reactor r;
	int rc = 0;

	if (reactor_init(&r) < 0)
		return err_sys(e, ERR_IO, "cannot create the event loop");
	if (updater_start(u, &r, o, on_sync_done, &r, e) < 0) {
		reactor_fini(&r);
		return -1;
	}
	while (u->active && !r.stopping)
		if (reactor_run_once(&r, -1) < 0 && errno != EINTR) {
			rc = err_sys(e, ERR_IO, "event loop failed");
			updater_cancel(u);
			break;
		}
	reactor_fini(&r);
	return rc;
}

/* ---- a check in the calling process (no supervisor) ---- */

static void
upd_opts_fill(struct upd_opts *o, const struct home *h, const struct settings *s,
    const struct pkgdir *pk, int check, int fetch_timeout_s, char *mid, size_t cap)
{
	memset(o, 0, sizeof *o);
	str_fmt(mid, cap, "%s/machine-id", h->state);
	o->settings = s;
	o->pk = pk;
	o->check_only = check;
	o->fetch_timeout_ms = (uint64_t)fetch_timeout_s * 1000;
	o->machine_id_fallback = mid;
}

int
upd_check_here(const struct home *h, const struct settings *s, const struct pkgdir *pk,
    int check, int fetch_timeout_s, struct upd_state *st, int bootstrap, struct err *e)
{
	static struct updater u;
	struct upd_opts o;
	const struct upd_result *res = &u.res;
	char mid[HOME_PATH_MAX + 16], prev[MANIFEST_VERSION_MAX];

	upd_opts_fill(&o, h, s, pk, check, fetch_timeout_s, mid, sizeof mid);
	if (updater_run_sync(&u, &o, e) < 0)
		return -1;
	str_copy(prev, sizeof prev, res->installed);
	if (res->kind == UPD_INSTALLED) {
		install_fault("before-switch");
		if (res->release[0] && install_switch(pk, res->release, e) < 0)
			return -1;
		updater_accept(&u);
		str_copy(u.st.previous_version, sizeof u.st.previous_version, prev);
		u.st.last_pid = 0;
		{
			struct err pe;
			err_clear(&pe);
			(void)install_prune(pk, NULL, &pe);
		}
	} else if (res->kind == UPD_NO_UPDATE) {
		updater_accept(&u);
	}
	updstate_record(&u.st, res->kind, res->kind == UPD_REJECTED ? res->reason : NULL,
	    res->version, res->err.msg);
	/* a check changes nothing; a first bootstrap that failed leaves
	 * nothing behind */
	if (res->kind == UPD_AVAILABLE ||
	    (res->kind == UPD_REJECTED && bootstrap && res->installed[0] == '\0')) {
		*st = u.st;
		return 0;
	}
	u.st.next_check_at = 0;
	u.st.request_id[0] = '\0';
	*st = u.st;
	return updstate_write(pk->state, &u.st, e);
}
