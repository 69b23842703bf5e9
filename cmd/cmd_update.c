/* cmd_update.c -- `appd bootstrap` and `appd update` (DESIGN.md "Updater";
 * seed-contract.md §1.5 for bootstrap's order of steps and output). */
#include "cmd/appd.h"
#include "core/base/fsutil.h"
#include "core/lock.h"
#include "core/supervisor.h"
#include "core/update/updater.h"
#include "platform/proc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FETCH_TIMEOUT_DEFAULT_S 300

struct upd_args {
	int check;
	int remote_control;
	int timeout_s;          /* whole command; 0: derived */
	int fetch_timeout_s;
	int lock_timeout_s;
	const char *url;
	const char *keys[2];
	int nkeys;
	const char *ca;
};

static int
parse(int argc, char **argv, int bootstrap, struct upd_args *a, struct err *e)
{
	memset(a, 0, sizeof *a);
	a->lock_timeout_s = LOCK_TIMEOUT_DEFAULT_S;
	a->fetch_timeout_s = FETCH_TIMEOUT_DEFAULT_S;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(f, "--timeout") == 0 || strcmp(f, "--fetch-timeout") == 0 ||
		    strcmp(f, "--lock-timeout") == 0) {
			int *dst = f[2] == 't' ? &a->timeout_s :
			    f[2] == 'f' ? &a->fetch_timeout_s : &a->lock_timeout_s;
			if (arg_seconds(f, v, f[2] == 'l' ? 0 : 1, 86400, dst, e) < 0)
				return -1;
			i++;
		} else if (!bootstrap && strcmp(f, "--check") == 0) {
			a->check = 1;
		} else if (bootstrap && strcmp(f, "--remote-control") == 0) {
			a->remote_control = 1;
		} else if (bootstrap && (strcmp(f, "--manifest-url") == 0 ||
		    strcmp(f, "--public-key") == 0 || strcmp(f, "--ca-file") == 0)) {
			if (v == NULL || v[0] == '\0')
				return err_set(e, ERR_USAGE, "%s needs a value", f);
			if (f[2] == 'm')
				a->url = v;
			else if (f[2] == 'c')
				a->ca = v;
			else if (a->nkeys == 2)
				return err_set(e, ERR_USAGE, "at most two --public-key");
			else
				a->keys[a->nkeys++] = v;
			i++;
		} else {
			return err_set(e, ERR_USAGE, "unknown argument \"%s\" to %s", f, argv[0]);
		}
	}
	return 0;
}

/* The installed release's version, from packages/current ("" if none). */
static void
installed_version(const struct pkgdir *pk, const struct settings *s, char *out, size_t cap)
{
	struct err e;

	err_clear(&e);
	(void)install_link_version(pk->current, s->upd.target, out, cap, &e);
}

static void
upd_opts_fill(struct upd_opts *o, const struct home *h, const struct settings *s,
    const struct pkgdir *pk, int check, int fetch_timeout_s, char *mid, size_t cap)
{
	memset(o, 0, sizeof *o);
	str_fmt(mid, cap, "%s/machine-id", h->state);
	o->cfg = &s->upd;
	o->pk = pk;
	o->check_only = check;
	o->fetch_timeout_ms = (uint64_t)fetch_timeout_s * 1000;
	o->machine_id_fallback = mid;
}

/* A check's failure as the command's error (exit 7, reason). */
static int
fail_rejected(const char *reason, const char *version, const char *msg, struct err *e)
{
	err_clear(e);
	err_ctx_str(e, "reason", reason);
	if (version && version[0])
		err_ctx_str(e, "version", version);
	return err_set(e, ERR_REJECTED, "%s", msg);
}

/* ---- asking the running supervisor ---- */

struct req_wait {
	const char *state_path;
	const char *id;
	struct upd_state *st;
};

/* Has packages/updater.json answered our request? */
static int
req_answered(void *arg)
{
	struct req_wait *w = arg;
	struct err e;

	err_clear(&e);
	return updstate_read(w->state_path, w->st, &e) == 0 &&
	    strcmp(w->st->request_id, w->id) == 0;
}

/*
 * Hand a check to the supervisor `sup`: write state/update-request.json,
 * SIGUSR1, then wait (lc_wait_dir on packages/, the supervisor's exit, a
 * deadline of `timeout_s`) for packages/updater.json to carry our id.
 * `locked`: we hold daemon.lock (the supervisor then does not take it).
 */
static int
delegate(const struct home *h, const struct pkgdir *pk, const struct pid_record *sup,
    int check, int fetch_timeout_s, int timeout_s, int locked, struct upd_state *st,
    struct err *e)
{
	char id[64], path[HOME_PATH_MAX + 32], req[256];
	struct req_wait w = { pk->state, id, st };
	int r;

	str_fmt(id, sizeof id, "%ld-%lld", (long)getpid(), (long long)wall_ms());
	str_fmt(path, sizeof path, "%s/%s", h->state, SUP_UPDATE_REQUEST);
	str_fmt(req, sizeof req, "{\"id\":\"%s\",\"checkOnly\":%s,\"fetchTimeoutMs\":%lld,"
	    "\"lockedBy\":%ld}\n", id, check ? "true" : "false", (long long)fetch_timeout_s * 1000,
	    locked ? (long)getpid() : 0L);
	if (fs_replace(path, req, strlen(req), 0600) < 0)
		return err_sys(e, ERR_IO, "cannot write %s", path);
	if (proc_signal_ident((pid_t)sup->pid, sup->start_ticks, SIGUSR1, 0) < 0)
		return err_sys(e, ERR_IO, "cannot signal the supervisor (pid %ld)", sup->pid);
	r = lc_wait_dir(pk->root, sup, timeout_s * 1000, req_answered, &w, e);
	if (r == 1)
		return 0;
	if (r == -2)
		return err_set(e, ERR_NOT_RUNNING, "the supervisor (pid %ld) exited before "
		    "answering the update request", sup->pid);
	if (r == 0)
		return err_set(e, ERR_OTHER, "no answer from the supervisor (pid %ld) to the "
		    "update request within %d s", sup->pid, timeout_s);
	return -1;
}

/* ---- checking in this process (no supervisor) ---- */

/*
 * Run a check here and make its result live: switch `current` to what it
 * installed, record the state.  Caller holds daemon.lock and no
 * supervisor runs.  Fills `st` as the supervisor would.
 */
static int
check_here(const struct home *h, const struct settings *s, const struct pkgdir *pk,
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

/* ---- appd update ---- */

int
cmd_update(int argc, char **argv)
{
	struct upd_args a;
	struct home h;
	struct settings s;
	struct pkgdir pk;
	struct pid_record sup;
	struct upd_state st;
	struct err e;
	struct out o;
	char cur[MANIFEST_VERSION_MAX];
	int lock = -1, r;

	err_clear(&e);
	if (parse(argc, argv, 0, &a, &e) < 0 || cmd_home(&h, 1, &e) < 0 ||
	    settings_load(h.settings, &s, &e) < 0 || install_paths(&pk, h.packages, &e) < 0)
		return out_fail(&e);
	if (s.upd.manifest_url[0] == '\0' || s.upd.nkeys == 0) {
		err_set(&e, ERR_USAGE, "no update source configured; run: appd bootstrap "
		    "--manifest-url URL --public-key KEY");
		return out_fail(&e);
	}
	if (a.timeout_s == 0)
		a.timeout_s = 2 * a.fetch_timeout_s + s.grace_s + s.ready_timeout_s + 30;
	r = lc_supervisor(&h, &sup, &e);
	if (r < 0)
		return out_fail(&e);
	if (r == 1) {
		if (delegate(&h, &pk, &sup, a.check, a.fetch_timeout_s, a.timeout_s, 0, &st, &e) < 0)
			return out_fail(&e);
	} else {
		if ((lock = cmd_lock(&h, "update", a.lock_timeout_s, &e)) < 0)
			return out_fail(&e);
		if (check_here(&h, &s, &pk, a.check, a.fetch_timeout_s, &st, 0, &e) < 0)
			return out_fail(&e);
	}
	if (updstate_kind(&st) == UPD_REJECTED) {
		fail_rejected(st.last_reason, st.last_version, st.last_message, &e);
		return out_fail(&e);
	}
	installed_version(&pk, &s, cur, sizeof cur);
	if (lock >= 0)
		lock_release(lock);
	out_begin(&o, st.last_result);
	if (updstate_kind(&st) == UPD_AVAILABLE)
		jsonw_kstr(&o.w, "availableVersion", st.last_version);
	if (cur[0])
		jsonw_kstr(&o.w, "installedVersion", cur);
	if (updstate_kind(&st) == UPD_INSTALLED) {
		if (st.previous_version[0])
			jsonw_kstr(&o.w, "previousVersion", st.previous_version);
		if (st.last_pid > 0)
			jsonw_kint(&o.w, "pid", st.last_pid);
	}
	if (st.last_message[0])
		jsonw_kstr(&o.w, "message", st.last_message);
	/* also refreshes the managedVersion cache `status` reads */
	out_common(&o, &h, &s);
	return out_end(&o);
}

/* ---- appd bootstrap ---- */

/* Save the updater settings and the remote-control flag, each member
 * on its own so that anything else in settings.json survives. */
static int
save_settings(const struct home *h, const struct settings_updater *u, int rc, struct err *e)
{
	char v[SETTINGS_URL_MAX + 1200];
	struct jsonw w;

	jsonw_init(&w, v, sizeof v);
	jsonw_str(&w, u->manifest_url);
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.manifestUrl", v, e) < 0)
		return -1;
	jsonw_init(&w, v, sizeof v);
	jsonw_arr_begin(&w);
	for (int i = 0; i < u->nkeys; i++)
		jsonw_str(&w, u->keys[i]);
	jsonw_arr_end(&w);
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.publicKeys", v, e) < 0)
		return -1;
	jsonw_init(&w, v, sizeof v);
	if (u->ca_file[0])
		jsonw_str(&w, u->ca_file);
	else
		jsonw_null(&w);
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.caFile", v, e) < 0)
		return -1;
	if (settings_set(h->settings, "updater.autoUpdateEnabled", "true", e) < 0)
		return -1;
	return settings_set(h->settings, "remoteControlEnabled", rc ? "true" : "false", e);
}

int
cmd_bootstrap(int argc, char **argv)
{
	struct upd_args a;
	struct home h;
	struct settings s;
	struct pkgdir pk;
	struct pid_record sup;
	struct upd_state st;
	struct start_result res;
	struct sup_status sst;
	struct sig_pubkey pkey;
	struct err e;
	struct out o;
	char cur[MANIFEST_VERSION_MAX], ca[PATH_MAX];
	int lock, r, rc_changed;

	err_clear(&e);
	if (parse(argc, argv, 1, &a, &e) < 0 || cmd_home(&h, 1, &e) < 0 ||
	    install_paths(&pk, h.packages, &e) < 0)
		return out_fail(&e);
	if ((lock = cmd_lock(&h, "bootstrap", a.lock_timeout_s, &e)) < 0)
		return out_fail(&e);
	if (settings_load(h.settings, &s, &e) < 0)
		return out_fail(&e);
	/* what the flags give replaces what was saved; a rerun without them
	 * keeps the saved source */
	if (a.url) {
		if (strncmp(a.url, "https://", 8) != 0 || strlen(a.url) > SETTINGS_URL_MAX)
			return err_set(&e, ERR_USAGE, "--manifest-url must be an https:// URL"),
			    out_fail(&e);
		str_copy(s.upd.manifest_url, sizeof s.upd.manifest_url, a.url);
	}
	if (a.nkeys > 0) {
		s.upd.nkeys = 0;
		for (int i = 0; i < a.nkeys; i++) {
			if (sig_pubkey_parse(a.keys[i], &pkey, &e) < 0)
				return e.code = ERR_USAGE, out_fail(&e);
			str_copy(s.upd.keys[s.upd.nkeys++], sizeof s.upd.keys[0], a.keys[i]);
		}
	}
	if (a.ca) {
		if (arg_abspath(&a.ca, ca, sizeof ca, &e) < 0)
			return out_fail(&e);
		str_copy(s.upd.ca_file, sizeof s.upd.ca_file, a.ca);
	}
	if (s.upd.manifest_url[0] == '\0' || s.upd.nkeys == 0)
		return err_set(&e, ERR_USAGE, "bootstrap needs --manifest-url and --public-key "
		    "(none are saved yet)"), out_fail(&e);
	if (a.timeout_s == 0)
		a.timeout_s = 2 * a.fetch_timeout_s + s.grace_s + s.ready_timeout_s + 30;
	if ((r = lc_unmanaged(&h, &e)) != 0) {
		if (r > 0)
			err_set(&e, ERR_UNMANAGED, UNMANAGED_MSG);
		return out_fail(&e);
	}
	rc_changed = s.remote_control != a.remote_control;
	r = lc_supervisor(&h, &sup, &e);
	if (r < 0)
		return out_fail(&e);
	if (r == 1) {
		/* rerun: the running supervisor checks with the saved source */
		if (save_settings(&h, &s.upd, a.remote_control, &e) < 0 ||
		    delegate(&h, &pk, &sup, 0, a.fetch_timeout_s, a.timeout_s, 1, &st, &e) < 0)
			return out_fail(&e);
		if (updstate_kind(&st) == UPD_REJECTED)
			return fail_rejected(st.last_reason, st.last_version, st.last_message, &e),
			    out_fail(&e);
		if (settings_load(h.settings, &s, &e) < 0)
			return out_fail(&e);
		if (rc_changed && lc_restart_in_place(&h, &sup, s.grace_s, s.ready_timeout_s, &sst,
		    &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
		err_clear(&e);
		if (lc_start(&h, &s, s.ready_timeout_s, &res, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
	} else {
		if (check_here(&h, &s, &pk, 0, a.fetch_timeout_s, &st, 1, &e) < 0)
			return out_fail(&e);
		if (updstate_kind(&st) == UPD_REJECTED)
			return fail_rejected(st.last_reason, st.last_version, st.last_message, &e),
			    out_fail(&e);
		if (save_settings(&h, &s.upd, a.remote_control, &e) < 0 ||
		    settings_load(h.settings, &s, &e) < 0)
			return out_fail(&e);
		if (lc_start(&h, &s, s.ready_timeout_s, &res, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
	}
	lock_release(lock);
	installed_version(&pk, &s, cur, sizeof cur);
	out_begin(&o, "bootstrapped");
	jsonw_kstr(&o.w, "backend", "pid");
	jsonw_kint(&o.w, "pid", res.server_pid);
	jsonw_kbool(&o.w, "autoUpdateEnabled", s.upd.enabled);
	jsonw_kbool(&o.w, "remoteControlEnabled", s.remote_control);
	out_common(&o, &h, &s);
	if (cur[0])
		jsonw_kstr(&o.w, "installedVersion", cur);
	err_clear(&e);
	if (status_read(h.status, &sst, &e) == 0 && sst.app_server_version[0])
		out_server_version(&o, sst.app_server_version);
	else
		out_server_version(&o, cur);
	return out_end(&o);
}

/* ---- status ---- */

void
out_updater(struct out *o, const struct home *h, const struct settings *s,
    const struct sup_status *live)
{
	struct pkgdir pk;
	struct upd_state st;
	struct err e;
	char cur[MANIFEST_VERSION_MAX];

	err_clear(&e);
	if (install_paths(&pk, h->packages, &e) < 0)
		return;
	jsonw_kbool(&o->w, "autoUpdateEnabled", s->upd.enabled);
	installed_version(&pk, s, cur, sizeof cur);
	if (cur[0])
		jsonw_kstr(&o->w, "installedVersion", cur);
	if (updstate_read(pk.state, &st, &e) < 0)
		return;
	if (st.last_check_at > 0) {
		jsonw_ktime(&o->w, "lastCheckAt", st.last_check_at);
		jsonw_kstr(&o->w, "lastResult", st.last_result);
		if (st.last_reason[0])
			jsonw_kstr(&o->w, "lastReason", st.last_reason);
	}
	if (live)
		jsonw_ktime(&o->w, "nextCheckAt", live->next_check_at);
	jsonw_key(&o->w, "rejectedVersions");
	jsonw_arr_begin(&o->w);
	for (int i = 0; i < st.nrejected; i++)
		jsonw_str(&o->w, st.rejected[i]);
	jsonw_arr_end(&o->w);
}
