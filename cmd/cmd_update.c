/* cmd_update.c -- `appd bootstrap` and `appd update` (DESIGN.md "Updater";
 * seed-contract.md §1.5 for bootstrap's order of steps and output). */
#include "cmd/appd.h"
#include "core/unmanaged.h"
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
	int replace_unmanaged;  /* bootstrap: stop an unmanaged server first */
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
		} else if (bootstrap && strcmp(f, "--replace-unmanaged") == 0) {
			a->replace_unmanaged = 1;
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
	(void)install_link_version(pk->current, settings_str(s, s->upd.target), out, cap, &e);
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
	if (!s.upd.has_url || s.upd.nkeys == 0) {
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
		if (lc_update_request(&h, &pk, &sup, a.check, a.fetch_timeout_s, a.timeout_s, 0, &st, &e) < 0)
			return out_fail(&e);
	} else {
		if ((lock = cmd_lock(&h, "update", a.lock_timeout_s, &e)) < 0)
			return out_fail(&e);
		if (upd_check_here(&h, &s, &pk, a.check, a.fetch_timeout_s, &st, 0, &e) < 0)
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
save_settings(const struct home *h, const struct settings *s, int rc, struct err *e)
{
	const struct settings_updater *u = &s->upd;
	char v[SETTINGS_URL_MAX + 1200];
	struct jsonw w;

	jsonw_init(&w, v, sizeof v);
	jsonw_str(&w, settings_str(s, u->manifest_url));
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.manifestUrl", v, e) < 0)
		return -1;
	jsonw_init(&w, v, sizeof v);
	jsonw_arr_begin(&w);
	for (int i = 0; i < u->nkeys; i++)
		jsonw_str(&w, settings_str(s, u->keys[i]));
	jsonw_arr_end(&w);
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.publicKeys", v, e) < 0)
		return -1;
	jsonw_init(&w, v, sizeof v);
	if (settings_str(s, u->ca_file)[0])
		jsonw_str(&w, settings_str(s, u->ca_file));
	else
		jsonw_null(&w);
	if (jsonw_finish(&w) < 0 || settings_set(h->settings, "updater.caFile", v, e) < 0)
		return -1;
	if (settings_set(h->settings, "updater.autoUpdateEnabled", "true", e) < 0)
		return -1;
	return settings_set(h->settings, "remoteControlEnabled", rc ? "true" : "false", e);
}

/* A rerun with a supervisor: it checks with the saved source; a change
 * of the remote-control flag restarts the server in place. */
static int
bootstrap_rerun(const struct home *h, struct settings *s, const struct pkgdir *pk,
    const struct pid_record *sup, const struct upd_args *a, int rc_changed,
    struct start_result *res, struct err *e)
{
	struct upd_state st;
	struct sup_status sst;

	if (save_settings(h, s, a->remote_control, e) < 0 ||
	    lc_update_request(h, pk, sup, 0, a->fetch_timeout_s, a->timeout_s, 1, &st, e) < 0)
		return -1;
	if (updstate_kind(&st) == UPD_REJECTED)
		return fail_rejected(st.last_reason, st.last_version, st.last_message, e);
	if (settings_load(h->settings, s, e) < 0)
		return -1;
	if (rc_changed && lc_restart_in_place(h, sup, s->grace_s, s->ready_timeout_s, &sst, e) < 0)
		return err_managed(e, h, s), -1;
	err_clear(e);
	if (lc_start(h, s, s->ready_timeout_s, res, e) < 0)
		return err_managed(e, h, s), -1;
	return 0;
}

/* The first bootstrap: check and install here, then save the source and
 * start (a rejected first check leaves nothing behind). */
static int
bootstrap_first(const struct home *h, struct settings *s, const struct pkgdir *pk,
    const struct upd_args *a, struct start_result *res, struct err *e)
{
	struct upd_state st;

	if (upd_check_here(h, s, pk, 0, a->fetch_timeout_s, &st, 1, e) < 0)
		return -1;
	if (updstate_kind(&st) == UPD_REJECTED)
		return fail_rejected(st.last_reason, st.last_version, st.last_message, e);
	if (save_settings(h, s, a->remote_control, e) < 0 ||
	    settings_load(h->settings, s, e) < 0)
		return -1;
	if (lc_start(h, s, s->ready_timeout_s, res, e) < 0)
		return err_managed(e, h, s), -1;
	return 0;
}

int
cmd_bootstrap(int argc, char **argv)
{
	struct upd_args a;
	struct home h;
	struct settings s;
	struct pkgdir pk;
	struct pid_record sup;
	struct start_result res;
	struct sup_status sst;
	struct sig_pubkey pkey;
	struct err e;
	struct out o;
	char cur[MANIFEST_VERSION_MAX], ca[PATH_MAX];
	int lock, r, rc_changed;
	const struct unmanaged *replaced = NULL;

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
		if (settings_put(&s, &s.upd.manifest_url, a.url) < 0)
			return err_set(&e, ERR_USAGE, "--manifest-url is too long"), out_fail(&e);
		s.upd.has_url = 1;
	}
	if (a.nkeys > 0) {
		s.upd.nkeys = 0;
		for (int i = 0; i < a.nkeys; i++) {
			if (sig_pubkey_parse(a.keys[i], &pkey, &e) < 0)
				return e.code = ERR_USAGE, out_fail(&e);
			if (settings_put(&s, &s.upd.keys[s.upd.nkeys++], a.keys[i]) < 0)
				return err_set(&e, ERR_USAGE, "--public-key is too long"), out_fail(&e);
		}
	}
	if (a.ca) {
		if (arg_abspath(&a.ca, ca, sizeof ca, &e) < 0)
			return out_fail(&e);
		if (strlen(a.ca) > SETTINGS_CA_MAX || settings_put(&s, &s.upd.ca_file, a.ca) < 0)
			return err_set(&e, ERR_USAGE, "--ca-file is longer than %d bytes",
			    SETTINGS_CA_MAX), out_fail(&e);
	}
	if (!s.upd.has_url || s.upd.nkeys == 0)
		return err_set(&e, ERR_USAGE, "bootstrap needs --manifest-url and --public-key "
		    "(none are saved yet)"), out_fail(&e);
	if (a.timeout_s == 0)
		a.timeout_s = 2 * a.fetch_timeout_s + s.grace_s + s.ready_timeout_s + 30;
	if ((r = lc_unmanaged(&h, &e)) != 0) {
		const struct unmanaged *u = r > 0 ? cmd_unmanaged(&h) : NULL;
		int killed;

		if (r < 0)
			return out_fail(&e);
		if (!a.replace_unmanaged || u == NULL)
			return err_unmanaged(&h, &e), out_fail(&e);
		/* it goes first: the new server needs its socket */
		if (lc_stop_unmanaged(&h, u, s.grace_s, &killed, &e) < 0)
			return out_fail(&e);
		replaced = u;
	}
	rc_changed = s.remote_control != a.remote_control;
	r = lc_supervisor(&h, &sup, &e);
	if (r < 0)
		return out_fail(&e);
	if ((r == 1 ? bootstrap_rerun(&h, &s, &pk, &sup, &a, rc_changed, &res, &e) :
	    bootstrap_first(&h, &s, &pk, &a, &res, &e)) < 0)
		return out_fail(&e);
	lock_release(lock);
	installed_version(&pk, &s, cur, sizeof cur);
	out_begin(&o, "bootstrapped");
	if (replaced != NULL) {
		jsonw_key(&o.w, "replacedUnmanaged");
		jsonw_raw(&o.w, replaced->json, strlen(replaced->json));
	}
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
