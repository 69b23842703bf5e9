/* settings.c -- see settings.h. */
#include "core/settings.h"
#include "core/hprobe.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "platform/compat.h"
#include "platform/target.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const readiness_names[] = {
	[READY_CONNECT] = "connect", [READY_NOTIFY] = "notify",
	[READY_CODEX_INIT] = "codex-initialize", [READY_NONE] = "none",
	[READY_PROBE] = "probe",
};
static const char *const restart_names[] = {
	[RESTART_ON_FAILURE] = "on-failure", [RESTART_ALWAYS] = "always",
	[RESTART_NEVER] = "never",
};

const char *
readiness_name(enum readiness r)
{
	return readiness_names[r];
}

int
settings_put(struct settings *s, unsigned short *slot, const char *str)
{
	size_t n = strlen(str) + 1;

	*slot = 0;
	if (s->used + n > sizeof s->store)
		return -1;
	memcpy(s->store + s->used, str, n);
	*slot = s->used;
	s->used = (unsigned short)(s->used + n);
	return 0;
}

void
settings_assign(struct settings *dst, const struct settings *src)
{
	memcpy(dst, src, offsetof(struct settings, store) + src->used);
}

/* server.command: at most SETTINGS_ARGS_MAX bytes in all (what does not
 * fit is left off, as before the store was shared) */
#define SETTINGS_ARGS_MAX 8192
#define SAVE_COMMAND_MAX 16384
#define SETTINGS_RC_MAX 2048

static void
set_argv(struct settings *s, int argc, const char *const *args)
{
	size_t off = 0;
	int i;

	s->argc = 0;
	for (i = 0; i < argc && i < SETTINGS_MAX_ARGS; i++) {
		size_t n = strlen(args[i]) + 1;
		if (off + n > SETTINGS_ARGS_MAX ||
		    settings_put(s, &s->argoff[s->argc], args[i]) < 0)
			break;
		s->argc++;
		off += n;
	}
}

void
settings_defaults(struct settings *s)
{
	static const char *const def[] = {
		"{current}/bin/app-server", "--listen", "unix://{socket}"
	};

	/* everything but the store, whose bytes are written as they are
	 * used: a resident supervisor touches only what its settings hold */
	memset(s, 0, offsetof(struct settings, store));
	s->store[0] = '\0';            /* offset 0: "" */
	s->used = 1;
	set_argv(s, 3, def);
	s->readiness = READY_CONNECT;
	s->ready_timeout_s = 10;
	s->grace_s = 10;
	s->restart = RESTART_ON_FAILURE;
	s->log_max_bytes = 1 << 20;
	(void)settings_put(s, &s->rc_argoff[0], "--remote-control");
	s->rc_argc = 1;
	s->upd.interval_min = 60;
	(void)settings_put(s, &s->upd.name, "app-server");
	(void)settings_put(s, &s->upd.target, APPD_TARGET);
}

/* Append `str` to the remote-control strings (`*off` bytes of
 * SETTINGS_RC_MAX used so far) and store its offset in `*slot`; -1 when
 * full. */
static int
rc_store(struct settings *s, size_t *off, const char *str, unsigned short *slot)
{
	size_t n = strlen(str) + 1;

	if (*off + n > SETTINGS_RC_MAX || settings_put(s, slot, str) < 0)
		return -1;
	*off += n;
	return 0;
}

static int
bad(struct err *e, const char *path, const char *what)
{
	err_ctx_str(e, "path", path);
	return err_set(e, ERR_SETTINGS, "invalid settings %s: %s; the file was left as it is",
	    path, what);
}

static int
get_enum(const struct jsonr *r, const char *key, const char *const *names, int n, int *out)
{
	char buf[64];
	int i = jsonr_path(r, key), k;

	if (i < 0)
		return 0;
	if (jsonr_str(r, i, buf, sizeof buf) < 0)
		return -1;
	for (k = 0; k < n; k++)
		if (strcmp(buf, names[k]) == 0) {
			*out = k;
			return 0;
		}
	return -1;
}

static int
get_int(const struct jsonr *r, const char *key, long long lo, long long hi, long long *out)
{
	int i = jsonr_path(r, key);
	long long v;

	if (i < 0)
		return 0;
	if (jsonr_int(r, i, &v) < 0 || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
get_bool(const struct jsonr *r, const char *key, int *out)
{
	int i = jsonr_path(r, key);

	if (i < 0)
		return 0;
	return jsonr_bool(r, i, out);
}

/* The string of token `i` into the store as member `*slot` (and into
 * `buf`, which has room for max+1 bytes): 1, or -1 when `i` is not a
 * string (or -1: absent), is longer than `max`, or the store is full. */
static int
get_str(const struct jsonr *r, int i, struct settings *s, unsigned short *slot, char *buf,
    size_t max)
{
	if (jsonr_str(r, i, buf, max + 1) < 0 || settings_put(s, slot, buf) < 0)
		return -1;
	return 1;
}

/* updater.* */
static int
parse_updater(const struct jsonr *r, struct settings *s, struct err *e, const char *path)
{
	struct settings_updater *u = &s->upd;
	char buf[SETTINGS_URL_MAX + 1];
	long long v = u->interval_min;
	int i, k;

	if (get_bool(r, "updater.autoUpdateEnabled", &u->enabled) < 0)
		return bad(e, path, "updater.autoUpdateEnabled must be true or false");
	i = jsonr_path(r, "updater.manifestUrl");
	if (i >= 0 && !jsonr_is_null(r, i) &&
	    (get_str(r, i, s, &u->manifest_url, buf, SETTINGS_URL_MAX) < 0 ||
	    strncmp(settings_str(s, u->manifest_url), "https://", 8) != 0))
		return bad(e, path, "updater.manifestUrl must be an https:// URL");
	u->has_url = settings_str(s, u->manifest_url)[0] != '\0';
	i = jsonr_path(r, "updater.publicKeys");
	if (i >= 0) {
		if (jsonr_type(r, i) != JSMN_ARRAY || r->tok[i].size > 2)
			return bad(e, path, "updater.publicKeys must be an array of at most 2 keys");
		for (k = 0; k < r->tok[i].size; k++)
			if (get_str(r, jsonr_elem(r, i, k), s, &u->keys[k], buf, SETTINGS_KEY_HEX) < 0 ||
			    strlen(settings_str(s, u->keys[k])) != SETTINGS_KEY_HEX)
				return bad(e, path, "updater.publicKeys must hold 130-hex-digit P-256 keys");
		u->nkeys = r->tok[i].size;
	}
	i = jsonr_path(r, "updater.caFile");
	if (i >= 0 && !jsonr_is_null(r, i) &&
	    get_str(r, i, s, &u->ca_file, buf, SETTINGS_CA_MAX) < 0)
		return bad(e, path, "updater.caFile must be a path or null");
	if (get_int(r, "updater.intervalMinutes", 1, 10080, &v) < 0)
		return bad(e, path, "updater.intervalMinutes must be an integer from 1 to 10080");
	u->interval_min = (int)v;
	i = jsonr_path(r, "updater.name");
	if (i >= 0 && (get_str(r, i, s, &u->name, buf, SETTINGS_NAME_MAX) < 0 || buf[0] == '\0' ||
	    strchr(buf, '/') != NULL || buf[0] == '.'))
		return bad(e, path, "updater.name must be a file name");
	i = jsonr_path(r, "updater.target");
	if (i >= 0 && (get_str(r, i, s, &u->target, buf, SETTINGS_NAME_MAX) < 0 || buf[0] == '\0' ||
	    strchr(buf, '/') != NULL))
		return bad(e, path, "updater.target must be a target name");
	return 0;
}

/* What one settings_load needs only while it parses: mapped for the call
 * and returned to the kernel after it, so the resident supervisor does
 * not keep 180 KB of parse buffers. */
struct load_scratch {
	char text[SETTINGS_MAX_BYTES];
	jsmntok_t tok[2048];
	char store[SETTINGS_MAX_ARGS][1024];
	struct settings keep;
	char spec[SETTINGS_SPEC_MAX + 1];  /* a probe spec being checked */
	struct hprobe_spec chk;
	struct err pe;
};
static struct load_scratch *scratch COMPAT_RESIDENT;

/* server.remoteControlArgs / server.remoteControlDisabledEnv */
static int
parse_rc(const struct jsonr *r, struct settings *s, struct err *e, const char *path)
{
	char item[512], name[128];
	int a = jsonr_path(r, "server.remoteControlArgs");
	int v = jsonr_path(r, "server.remoteControlDisabledEnv");
	size_t off = 0;
	int k, i;

	if (a < 0 && v < 0)
		return 0;
	/* rebuild rcbuf from what is configured, keeping the defaults for
	 * the member that is absent */
	{
		struct settings *keep = &scratch->keep;
		*keep = *s;
		s->rc_argc = s->rc_envc = 0;
		if (a < 0)
			for (k = 0; k < keep->rc_argc; k++)
				(void)rc_store(s, &off, settings_rc_arg(keep, k), &s->rc_argoff[s->rc_argc++]);
		if (v < 0)
			for (k = 0; k < keep->rc_envc; k++)
				(void)rc_store(s, &off, settings_rc_env(keep, k), &s->rc_envoff[s->rc_envc++]);
	}
	if (a >= 0) {
		if (jsonr_type(r, a) != JSMN_ARRAY || r->tok[a].size > 8)
			return bad(e, path, "server.remoteControlArgs must be an array of at most 8 strings");
		for (k = 0; k < r->tok[a].size; k++) {
			if (jsonr_str(r, jsonr_elem(r, a, k), item, sizeof item) < 0 ||
			    rc_store(s, &off, item, &s->rc_argoff[s->rc_argc]) < 0)
				return bad(e, path, "server.remoteControlArgs must be an array of short strings");
			s->rc_argc++;
		}
	}
	if (v >= 0) {
		if (jsonr_type(r, v) != JSMN_OBJECT || r->tok[v].size > 8)
			return bad(e, path, "server.remoteControlDisabledEnv must be an object of at most 8 strings");
		i = v + 1;
		for (k = 0; k < r->tok[v].size; k++) {
			char pair[640];
			if (jsonr_str(r, i, name, sizeof name) < 0 || name[0] == '\0' ||
			    strchr(name, '=') != NULL || jsonr_str(r, i + 1, item, sizeof item) < 0)
				return bad(e, path, "server.remoteControlDisabledEnv must map names to strings");
			fmt_n(pair, sizeof pair, "%s=%s", name, item);
			if (rc_store(s, &off, pair, &s->rc_envoff[s->rc_envc]) < 0)
				return bad(e, path, "server.remoteControlDisabledEnv is too large");
			s->rc_envc++;
			i = jsonr_skip(r, i + 1);
		}
	}
	return 0;
}

/* server.liveness: {"probe": SPEC, "intervalSeconds", "timeoutSeconds",
 * "failureThreshold"}; null or absent: off. */
static int
parse_liveness(const struct jsonr *r, struct settings *s, struct err *e, const char *path)
{
	struct settings_liveness *l = &s->live;
	int i = jsonr_path(r, "server.liveness");
	long long v;

	v = 0;
	if (get_int(r, "server.watchdogSeconds", 0, 3600, &v) < 0)
		return bad(e, path, "server.watchdogSeconds must be an integer from 0 to 3600");
	l->watchdog_s = (int)v;
	l->enabled = 0;
	l->interval_s = 10;
	l->timeout_s = 5;
	l->threshold = 3;
	l->probe = 0;
	if (i < 0 || jsonr_is_null(r, i))
		return 0;
	if (jsonr_type(r, i) != JSMN_OBJECT)
		return bad(e, path, "server.liveness must be an object or null");
	if (get_str(r, jsonr_get(r, i, "probe"), s, &l->probe, scratch->spec, SETTINGS_SPEC_MAX) < 0)
		return bad(e, path, "server.liveness.probe must be connect, codex-initialize or a "
		    "probe (tcp://, http://, http+unix://, exec:)");
	if (strcmp(scratch->spec, "connect") != 0 && strcmp(scratch->spec, "codex-initialize") != 0) {
		struct hprobe_spec *chk = &scratch->chk;
		struct err *pe = &scratch->pe;
		err_clear(pe);
		if (!hprobe_is_spec(scratch->spec) ||
		    hprobe_parse(scratch->spec, "/x.sock", chk, pe) < 0)
			return bad(e, path, pe->msg[0] ? pe->msg : "server.liveness.probe must be "
			    "connect, codex-initialize or a probe (tcp://, http://, http+unix://, exec:)");
	}
	v = l->interval_s;
	if (get_int(r, "server.liveness.intervalSeconds", 1, 86400, &v) < 0)
		return bad(e, path, "server.liveness.intervalSeconds must be 1 to 86400");
	l->interval_s = (int)v;
	v = l->timeout_s;
	if (get_int(r, "server.liveness.timeoutSeconds", 1, 600, &v) < 0)
		return bad(e, path, "server.liveness.timeoutSeconds must be 1 to 600");
	l->timeout_s = (int)v;
	v = l->threshold;
	if (get_int(r, "server.liveness.failureThreshold", 1, 100, &v) < 0)
		return bad(e, path, "server.liveness.failureThreshold must be 1 to 100");
	l->threshold = (int)v;
	l->enabled = 1;
	return 0;
}

/* Every member of DESIGN.md "Settings" in turn, each check next to its
 * member. */
static int
load(const char *path, struct settings *s, struct err *e)
{
	char *text = scratch->text;
	jsmntok_t *tok = scratch->tok;
	struct jsonr r;
	size_t len;
	long long v;
	int i, k;

	settings_defaults(s);
	if (fs_read_file(path, text, sizeof scratch->text, &len) < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == EFBIG)
			return bad(e, path, "larger than 64 KiB");
		return fs_read_fail(e, ERR_SETTINGS, "settings", path);
	}
	s->from_file = 1;
	if (jsonr_parse(&r, text, len, tok, sizeof scratch->tok / sizeof scratch->tok[0]) < 0)
		return bad(e, path, "not a JSON object");
	{
		char dup[64], why[96];
		if (jsonr_dup_key(&r, dup, sizeof dup)) {
			fmt_n(why, sizeof why, "the member \"%s\" appears twice in one object", dup);
			return bad(e, path, why);
		}
	}
	i = jsonr_path(&r, "profile");
	if (i >= 0) {
		char prof[32];
		if (jsonr_str(&r, i, prof, sizeof prof) < 0 ||
		    (strcmp(prof, "generic") != 0 && strcmp(prof, "codex") != 0))
			return bad(e, path, "profile must be \"generic\" or \"codex\"");
		s->codex_profile = strcmp(prof, "codex") == 0;
	}
	if (s->codex_profile) {
		static const char *const codex[] = {
			CODEX_MANAGED_BIN, "app-server", "--listen", "unix://{socket}"
		};
		size_t off = sizeof "--remote-control";
		set_argv(s, 4, codex);
		s->readiness = READY_CODEX_INIT;
		(void)rc_store(s, &off, CODEX_RC_DISABLED_ENV, &s->rc_envoff[0]);
		s->rc_envc = 1;
		(void)settings_put(s, &s->upd.name, "codex");
	}
	if (parse_updater(&r, s, e, path) < 0)
		return -1;
	if (parse_rc(&r, s, e, path) < 0)
		return -1;
	i = jsonr_path(&r, "server.command");
	if (i >= 0) {
		const char *args[SETTINGS_MAX_ARGS];
		char (*store)[1024] = scratch->store;
		int n;

		if (jsonr_type(&r, i) != JSMN_ARRAY)
			return bad(e, path, "server.command must be an array of strings");
		n = r.tok[i].size;
		if (n < 1 || n > SETTINGS_MAX_ARGS)
			return bad(e, path, "server.command must have 1 to 64 strings");
		for (k = 0; k < n; k++) {
			if (jsonr_str(&r, jsonr_elem(&r, i, k), store[k], sizeof store[k]) < 0)
				return bad(e, path, "server.command must be an array of strings");
			args[k] = store[k];
		}
		if (store[0][0] == '\0')
			return bad(e, path, "server.command[0] is empty");
		set_argv(s, n, args);
	}
	i = jsonr_path(&r, "server.readiness");
	if (i >= 0 && jsonr_str(&r, i, scratch->spec, sizeof scratch->spec) == 0 &&
	    hprobe_is_spec(scratch->spec)) {
		err_clear(&scratch->pe);
		if (hprobe_parse(scratch->spec, "/x.sock", &scratch->chk, &scratch->pe) < 0)
			return bad(e, path, scratch->pe.msg);
		if (settings_put(s, &s->ready_spec, scratch->spec) < 0)
			return bad(e, path, "too large");
		s->readiness = READY_PROBE;
	} else {
		s->ready_spec = 0;
		if (get_enum(&r, "server.readiness", readiness_names, 4, &k) < 0)
			return bad(e, path, "server.readiness must be one of connect, notify, "
			    "codex-initialize, none, or a probe: tcp://HOST:PORT, "
			    "http://HOST:PORT/PATH, http+unix://SOCKET/PATH, exec:PROGRAM ARGS");
		if (i >= 0)
			s->readiness = (enum readiness)k;
	}
	if (get_enum(&r, "server.restart", restart_names, 3, &k) < 0)
		return bad(e, path, "server.restart must be one of on-failure, always, never");
	if (jsonr_path(&r, "server.restart") >= 0)
		s->restart = (enum restart_policy)k;
	if (parse_liveness(&r, s, e, path) < 0)
		return -1;
	v = s->ready_timeout_s;
	if (get_int(&r, "server.readyTimeoutSeconds", 1, 3600, &v) < 0)
		return bad(e, path, "server.readyTimeoutSeconds must be an integer from 1 to 3600");
	s->ready_timeout_s = (int)v;
	v = s->grace_s;
	if (get_int(&r, "server.shutdownGraceSeconds", 0, 300, &v) < 0)
		return bad(e, path, "server.shutdownGraceSeconds must be an integer from 0 to 300");
	s->grace_s = (int)v;
	v = s->log_max_bytes;
	if (get_int(&r, "server.logMaxBytes", 4096, 1LL << 34, &v) < 0)
		return bad(e, path, "server.logMaxBytes must be an integer from 4096 to 2^34");
	s->log_max_bytes = v;
	if (get_bool(&r, "server.socketActivation", &s->socket_activation) < 0)
		return bad(e, path, "server.socketActivation must be true or false");
	if (get_bool(&r, "remoteControlEnabled", &s->remote_control) < 0)
		return bad(e, path, "remoteControlEnabled must be true or false");
	return 0;
}

int
settings_load(const char *path, struct settings *s, struct err *e)
{
	int rc;

	scratch = compat_map(sizeof *scratch);
	if (scratch == NULL) {
		settings_defaults(s);
		err_ctx_str(e, "path", path);
		return err_sys(e, ERR_SETTINGS, "failed to read settings %s", path);
	}
	rc = load(path, s, e);
	compat_unmap(scratch, sizeof *scratch);
	scratch = NULL;
	return rc;
}

/* settings_set's text in and out, mapped for the call: `appd run`
 * records its command and then supervises, and 144 KB of statics touched
 * by that one write would stay resident in it */
struct set_scratch {
	char text[SETTINGS_MAX_BYTES];
	char out[SETTINGS_MAX_BYTES + 16384];
};

int
settings_set(const char *path, const char *key, const char *value, struct err *e)
{
	struct set_scratch *sc = compat_map(sizeof *sc);
	size_t len = 0;
	int rc = 0;

	if (sc == NULL)
		return err_sys(e, ERR_IO, "failed to write settings %s", path);
	if (fs_read_file(path, sc->text, sizeof sc->text, &len) < 0) {
		if (errno != ENOENT) {
			rc = fs_read_fail(e, ERR_SETTINGS, "settings", path);
			goto out;
		}
		len = 0;
	}
	if (jsonr_set(sc->text, len, key, value, sc->out, sizeof sc->out - 1) < 0) {
		if (errno == ENOSPC)
			rc = err_set(e, ERR_SETTINGS, "settings %s would be too large", path);
		else
			rc = bad(e, path, "not a JSON object");
		goto out;
	}
	len = strlen(sc->out);
	sc->out[len++] = '\n';
	if (fs_write_atomic(path, sc->out, len, 0600) < 0) {
		err_ctx_str(e, "path", path);
		rc = err_sys(e, ERR_IO, "failed to write settings %s", path);
	}
out:
	compat_unmap(sc, sizeof *sc);
	return rc;
}

int
settings_save_command(const char *path, int argc, char *const argv[], struct err *e)
{
	char *val;
	struct jsonw w;
	int i, rc;

	for (i = 0; i < argc; i++)
		if (!jsonw_utf8_ok(argv[i])) {
			err_ctx_num(e, "argument", i);
			return err_set(e, ERR_USAGE, "server command argument %d is not valid "
			    "UTF-8, so it cannot be stored in settings.json (JSON text is "
			    "UTF-8, RFC 8259 §8.1); nothing was changed", i);
		}
	if ((val = compat_map(SAVE_COMMAND_MAX)) == NULL)    /* as settings_set's */
		return err_sys(e, ERR_IO, "failed to write settings %s", path);
	jsonw_init(&w, val, SAVE_COMMAND_MAX);
	jsonw_arr_begin(&w);
	for (i = 0; i < argc; i++)
		jsonw_str(&w, argv[i]);
	jsonw_arr_end(&w);
	if (jsonw_finish(&w) < 0)
		rc = err_set(e, ERR_USAGE, "server command is too long");
	else
		rc = settings_set(path, "server.command", val, e);
	compat_unmap(val, SAVE_COMMAND_MAX);
	return rc;
}

int
settings_expand(const struct settings *s, const struct home *h, char *buf, size_t cap,
    char **out, struct err *e)
{
	size_t off = 0;
	int i;

	for (i = 0; i < s->argc; i++) {
		const char *p = settings_arg(s, i);

		out[i] = buf + off;
		while (*p) {
			const char *rep = NULL;
			size_t skip = 1, n;

			if (strncmp(p, "{home}", 6) == 0)
				rep = h->root, skip = 6;
			else if (strncmp(p, "{socket}", 8) == 0)
				rep = h->socket, skip = 8;
			else if (strncmp(p, "{current}", 9) == 0)
				rep = h->current, skip = 9;
			n = rep ? strlen(rep) : 1;
			if (off + n + 1 > cap)
				return err_set(e, ERR_SETTINGS, "server command is too long once expanded");
			memcpy(buf + off, rep ? rep : p, n);
			off += n;
			p += skip;
		}
		buf[off++] = '\0';
	}
	out[s->argc] = NULL;
	return 0;
}

int
settings_launch(const struct settings *s, const struct home *h, char *buf, size_t cap,
    char **argv, char **env, struct err *e)
{
	int n = s->argc, k;

	if (settings_expand(s, h, buf, cap, argv, e) < 0)
		return -1;
	env[0] = NULL;
	if (s->remote_control) {
		for (k = 0; k < s->rc_argc && n < SETTINGS_MAX_ARGS; k++)
			argv[n++] = (char *)settings_rc_arg(s, k);
		argv[n] = NULL;
	} else {
		for (k = 0; k < s->rc_envc; k++)
			env[k] = (char *)settings_rc_env(s, k);
		env[k] = NULL;
	}
	return 0;
}
