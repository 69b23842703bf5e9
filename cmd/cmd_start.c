/* cmd_start.c -- `appd start` and `appd restart`. */
#include "cmd/appd.h"
#include "core/unmanaged.h"
#include "core/hprobe.h"
#include "core/base/jsonw.h"
#include "core/base/fsutil.h"
#include "core/lock.h"
#include "platform/proc.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct start_args {
	int timeout_s;          /* 0: settings */
	int lock_timeout_s;
	int cmd_argc;
	char **cmd_argv;
	const char *ready;      /* --ready SPEC: saved as server.readiness */
};

static int
parse(int argc, char **argv, int allow_cmd, struct start_args *a, struct err *e)
{
	int i;

	memset(a, 0, sizeof *a);
	a->lock_timeout_s = LOCK_TIMEOUT_DEFAULT_S;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--timeout") == 0) {
			if (arg_seconds("--timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &a->timeout_s, e) < 0)
				return -1;
		} else if (strcmp(argv[i], "--lock-timeout") == 0) {
			if (arg_seconds("--lock-timeout", i + 1 < argc ? argv[++i] : NULL, 0, 3600,
			    &a->lock_timeout_s, e) < 0)
				return -1;
		} else if (strcmp(argv[i], "--ready") == 0 && allow_cmd) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0')
				return err_set(e, ERR_USAGE, "--ready needs a value");
			a->ready = argv[++i];
		} else if (strcmp(argv[i], "--") == 0 && allow_cmd) {
			a->cmd_argc = argc - i - 1;
			a->cmd_argv = argv + i + 1;
			if (a->cmd_argc < 1)
				return err_set(e, ERR_USAGE, "no command after --");
			if (a->cmd_argc > SETTINGS_MAX_ARGS)
				return err_set(e, ERR_USAGE, "at most %d arguments after --",
				    SETTINGS_MAX_ARGS);
			return 0;
		} else {
			return err_set(e, ERR_USAGE, "unknown argument \"%s\" to %s", argv[i], argv[0]);
		}
	}
	return 0;
}

/* A relative program path is made absolute (the supervisor runs in /);
 * a bare name stays for the PATH lookup, a placeholder as it is. */
static int
absolutize(char **argv0, char *store, size_t cap, struct err *e)
{
	const char *p = *argv0;

	if (strchr(p, '/') == NULL || p[0] == '{')
		return 0;
	if (arg_abspath(&p, store, cap, e) < 0)
		return -1;
	*argv0 = (char *)p;
	return 0;
}

/* The managed program must exist before anything is changed. */
int
cmd_preflight(const struct home *h, const struct settings *s, struct err *e)
{
	char buf[16384];
	char *argv[SETTINGS_MAX_ARGS + 1];

	if (settings_expand(s, h, buf, sizeof buf, argv, e) < 0)
		return -1;
	if (strchr(argv[0], '/') != NULL) {
		if (access(argv[0], X_OK) < 0) {
			err_ctx_str(e, "managedPath", argv[0]);
			if (s->codex_profile)
				return err_set(e, ERR_SPAWN, "managed standalone Codex install not "
				    "found at %s; install Codex first (appd bootstrap), or give "
				    "the binary with: appd start -- /path/to/codex app-server "
				    "--listen unix://{socket}", argv[0]);
			return err_sys(e, ERR_SPAWN, "managed app-server not found at %s; "
			    "give one with: appd start -- /path/to/server ARGS", argv[0]);
		}
		return 0;
	}
	/* a bare name: look it up in PATH as execvp will */
	{
		const char *path = getenv("PATH");
		char cand[PATH_MAX];
		const char *p = path ? path : "/usr/local/bin:/bin:/usr/bin";

		while (*p) {
			const char *c = strchr(p, ':');
			size_t n = c ? (size_t)(c - p) : strlen(p);
			if (n > 0 && n < sizeof cand - 2 &&
			    str_fmt(cand, sizeof cand, "%.*s/%s", (int)n, p, argv[0]) == 0 &&
			    access(cand, X_OK) == 0)
				return 0;
			p += n + (c ? 1 : 0);
		}
		err_ctx_str(e, "managedPath", argv[0]);
		return err_set(e, ERR_SPAWN, "managed app-server %s not found in PATH", argv[0]);
	}
}

/* --ready SPEC: checked, then (unless `check_only`) saved as
 * server.readiness. */
static int
save_readiness(const struct home *h, const char *spec, int check_only, struct err *e)
{
	struct hprobe_spec chk;
	char val[HPROBE_SPEC_MAX + 64];
	struct jsonw w;

	if (hprobe_is_spec(spec)) {
		if (hprobe_parse(spec, "/x.sock", &chk, e) < 0)
			return -1;
	} else if (strcmp(spec, "connect") != 0 && strcmp(spec, "notify") != 0 &&
	    strcmp(spec, "codex-initialize") != 0 && strcmp(spec, "none") != 0) {
		return err_set(e, ERR_USAGE, "--ready must be connect, notify, codex-initialize, "
		    "none, tcp://HOST:PORT, http://HOST:PORT/PATH, http+unix://SOCKET/PATH or "
		    "exec:PROGRAM ARGS");
	}
	if (!jsonw_utf8_ok(spec))
		return err_set(e, ERR_USAGE, "--ready is not UTF-8");
	jsonw_init(&w, val, sizeof val);
	jsonw_str(&w, spec);
	if (jsonw_finish(&w) < 0)
		return err_set(e, ERR_USAGE, "--ready is too long");
	if (check_only)
		return 0;
	return settings_set(h->settings, "server.readiness", val, e);
}

int
cmd_record_server(const struct home *h, int argc, char **argv, const char *ready,
    struct err *e)
{
	char abs0[PATH_MAX], *given = argc > 0 ? argv[0] : NULL;
	int rc;

	/* a bad --ready changes nothing */
	if (ready != NULL && save_readiness(h, ready, 1, e) < 0)
		return -1;
	if (argc > 0) {
		rc = absolutize(&argv[0], abs0, sizeof abs0, e) < 0 ||
		    settings_save_command(h->settings, argc, argv, e) < 0 ? -1 : 0;
		argv[0] = given;        /* abs0 is gone when we return */
		if (rc < 0)
			return -1;
	}
	if (ready != NULL && save_readiness(h, ready, 0, e) < 0)
		return -1;
	return 0;
}

/* appServerVersion as the supervisor's readiness probe saw it. */
static void
out_running_version(struct out *o, const struct home *h)
{
	struct sup_status st;
	struct err e;

	err_clear(&e);
	if (status_read(h->status, &st, &e) == 0)
		out_server_version(o, st.app_server_version);
}

int
cmd_start(int argc, char **argv)
{
	struct start_args a;
	struct home h;
	struct settings s;
	struct start_result res;
	struct err e;
	struct out o;
	int lock;

	err_clear(&e);
	if (parse(argc, argv, 1, &a, &e) < 0 || cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	lock = cmd_lock(&h, "start", a.lock_timeout_s, &e);
	if (lock < 0)
		return out_fail(&e);
	if (cmd_record_server(&h, a.cmd_argc, a.cmd_argv, a.ready, &e) < 0 ||
	    settings_load(h.settings, &s, &e) < 0)
		return out_fail(&e);
	if (a.timeout_s == 0)
		a.timeout_s = s.ready_timeout_s;
	switch (lc_unmanaged(&h, &e)) {
	case -1:
		return out_fail(&e);
	case 1: {
		/* seed §1.1: a server someone else runs on our socket is
		 * reported, not fought over */
		char v[64];
		struct err pe;
		err_clear(&pe);
		(void)probe_server(&h, &s, v, sizeof v, &pe);
		const struct unmanaged *u = cmd_unmanaged(&h);
		lock_release(lock);
		out_begin(&o, "alreadyRunning");
		if (u != NULL) {
			jsonw_key(&o.w, "unmanaged");
			jsonw_raw(&o.w, u->json, strlen(u->json));
		}
		out_common(&o, &h, &s);
		out_server_version(&o, v);
		return out_end(&o);
	}
	}
	{
		struct pid_record sup;
		struct err e2;
		err_clear(&e2);
		/* only a fresh launch needs the program; a running one is reported */
		if (lc_supervisor(&h, &sup, &e2) == 0 && cmd_preflight(&h, &s, &e) < 0)
			return out_fail(&e);
	}
	if (lc_start(&h, &s, a.timeout_s, &res, &e) < 0)
		return err_managed(&e, &h, &s), out_fail(&e);
	lock_release(lock);
	out_begin(&o, res.started ? "started" : "alreadyRunning");
	if (res.replaced_stale)
		out_warn(&o, "the previous supervisor did not answer within 1 s; it was stopped "
		    "and replaced");
	jsonw_kstr(&o.w, "backend", "pid");
	if (res.started)
		jsonw_kint(&o.w, "pid", res.server_pid);
	jsonw_kint(&o.w, "supervisorPid", res.sup_pid);
	out_common(&o, &h, &s);
	out_running_version(&o, &h);
	return out_end(&o);
}

int
cmd_restart(int argc, char **argv)
{
	struct start_args a;
	struct home h;
	struct settings s;
	struct start_result res;
	struct pid_record sup;
	struct sup_status st;
	struct err e;
	struct out o;
	int lock, r, stopped, behind = 0;

	err_clear(&e);
	if (parse(argc, argv, 0, &a, &e) < 0 || cmd_home(&h, 1, &e) < 0)
		return out_fail(&e);
	lock = cmd_lock(&h, "restart", a.lock_timeout_s, &e);
	if (lock < 0)
		return out_fail(&e);
	if (settings_load(h.settings, &s, &e) < 0)
		return out_fail(&e);
	if (a.timeout_s == 0)
		a.timeout_s = s.ready_timeout_s;
	if ((r = lc_unmanaged(&h, &e)) != 0) {
		if (r > 0)
			err_unmanaged(&h, &e);
		return out_fail(&e);
	}
	r = lc_supervisor(&h, &sup, &e);
	if (r < 0)
		return out_fail(&e);
	if (r == 1 && lc_live(&h, &sup, &st) == 1 &&
	    strcmp(st.state, "stopping") != 0 && strcmp(st.state, "stopped") != 0) {
		/* a supervisor that answers: restart in place (HUP), socket kept */
		if (lc_restart_in_place(&h, &sup, s.grace_s, a.timeout_s, &st, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
		res.server_pid = st.server_pid;
		res.sup_pid = sup.pid;
		behind = st.state_write_error[0] != '\0';
	} else {
		if (cmd_preflight(&h, &s, &e) < 0)
			return out_fail(&e);
		if (lc_stop(&h, s.grace_s, 0, &stopped, &e) < 0 ||
		    lc_start(&h, &s, a.timeout_s, &res, &e) < 0)
			return err_managed(&e, &h, &s), out_fail(&e);
	}
	lock_release(lock);
	out_begin(&o, "restarted");
	if (behind)
		out_state_behind(&o, &st);
	jsonw_kstr(&o.w, "backend", "pid");
	jsonw_kint(&o.w, "pid", res.server_pid);
	jsonw_kint(&o.w, "supervisorPid", res.sup_pid);
	out_common(&o, &h, &s);
	out_running_version(&o, &h);
	return out_end(&o);
}
