/*
 * cmd_with.c -- `appd with [--ready SPEC] [--timeout S] [--check-timeout S]
 * [--home DIR] [--keep] [--allow-restarts] -- SERVER ARGS... -- CHECK
 * ARGS...`: the one-shot CI harness (core/harness.h).
 *
 * A fresh temporary home unless --home (a temporary one is removed
 * afterwards unless --keep); the server started and waited for as `start`
 * does; CHECK run with APPD_HOME and APPD_SOCKET in its environment; then
 * the server tree stopped, always.  Exit status: CHECK's (128 + signal
 * when it was killed, 124 when --check-timeout passed), 128 + signal when
 * the harness itself got SIGINT/SIGTERM/SIGHUP, WITH_EXIT_SERVER_FAILED
 * when CHECK passed but the server was restarted or found unhealthy
 * meanwhile (unless --allow-restarts), start's own status when the
 * server did not become ready, and spawnFailed when CHECK cannot be run.  One JSON object on stdout; on failure the
 * server log tail on stderr (a collapsed group when GITHUB_ACTIONS=true).
 */
#include "cmd/appd.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/harness.h"
#include "core/logcap.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WITH_EXIT_SERVER_FAILED 8
#define WITH_EXIT_TIMEOUT 124

static void
show_log(const struct home *h)
{
	static char tail[ERR_TAIL_MAX + 1];
	const char *gh = getenv("GITHUB_ACTIONS");
	int fold = gh != NULL && strcmp(gh, "true") == 0;

	if (log_tail(h->srv_log, ERR_TAIL_MAX, tail, sizeof tail) < 0)
		return;
	fmt_fd(2, fold ? "::group::appd: server log (%s)\n" : "--- appd: server log (%s) ---\n",
	    h->srv_log);
	(void)fd_write_all(2, tail, strlen(tail));
	fmt_fd(2, fold ? "::endgroup::\n" : "--- end of server log ---\n");
}

static int
server_counts(const struct home *h, int *restarts, int *health)
{
	struct sup_status st;
	struct pid_record sup;
	struct err e;

	err_clear(&e);
	*restarts = *health = 0;
	if (lc_supervisor(h, &sup, &e) != 1 || lc_live(h, &sup, &st) != 1)
		return -1;
	*restarts = st.restarts;
	*health = st.health_restarts;
	return 0;
}

int
cmd_with(int argc, char **argv)
{
	static struct home h;
	static struct settings s;
	static char tmpl[] = "/tmp/appd-with-XXXXXX";
	static char envh[HOME_PATH_MAX + 16], envs[HOME_PATH_MAX + 16];
	struct start_result res;
	struct harness_check hc;
	struct err e;
	struct out o;
	const char *ready = NULL, *home = NULL;
	char **srv = NULL, **chk = NULL;
	char *envp[3];
	int nsrv = 0, timeout = 0, check_timeout = 0, keep = 0, allow = 0;
	int i, rc, r0, h0, r1 = 0, h1 = 0, stopped, code, temp = 0, failed_server;

	err_clear(&e);
	for (i = 1; i < argc && srv == NULL; i++) {
		if (strcmp(argv[i], "--ready") == 0 && i + 1 < argc) {
			ready = argv[++i];
		} else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
			home = argv[++i];
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = 1;
		} else if (strcmp(argv[i], "--allow-restarts") == 0) {
			allow = 1;
		} else if (strcmp(argv[i], "--timeout") == 0) {
			if (arg_seconds("--timeout", i + 1 < argc ? argv[++i] : NULL, 1, 3600,
			    &timeout, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--check-timeout") == 0) {
			if (arg_seconds("--check-timeout", i + 1 < argc ? argv[++i] : NULL, 1, 86400,
			    &check_timeout, &e) < 0)
				return out_fail(&e);
		} else if (strcmp(argv[i], "--") == 0) {
			srv = argv + i + 1;
		} else {
			return err_set(&e, ERR_USAGE, "unknown argument \"%s\" to with", argv[i]),
			    out_fail(&e);
		}
	}
	for (int k = 0; srv != NULL && srv + k < argv + argc; k++)
		if (strcmp(srv[k], "--") == 0) {
			nsrv = k;
			chk = srv + k + 1;
			srv[k] = NULL;
			break;
		}
	if (srv == NULL || nsrv == 0 || chk == NULL || *chk == NULL)
		return err_set(&e, ERR_USAGE, "usage: appd with [options] -- SERVER ARGS... -- "
		    "CHECK ARGS..."), out_fail(&e);
	if (home == NULL) {
		if (mkdtemp(tmpl) == NULL)
			return err_sys(&e, ERR_IO, "cannot make a temporary home"), out_fail(&e);
		home = tmpl;
		temp = 1;
	}
	if (setenv("APPD_HOME", home, 1) < 0 || cmd_home(&h, 1, &e) < 0)
		goto fail;
	if (cmd_record_server(&h, nsrv, srv, ready, &e) < 0 ||
	    settings_load(h.settings, &s, &e) < 0 || cmd_preflight(&h, &s, &e) < 0)
		goto fail;
	if (lc_start(&h, &s, timeout > 0 ? timeout : s.ready_timeout_s, &res, &e) < 0)
		goto fail;
	(void)server_counts(&h, &r0, &h0);
	fmt_n(envh, sizeof envh, "APPD_HOME=%s", h.root);
	fmt_n(envs, sizeof envs, "APPD_SOCKET=%s", h.socket);
	envp[0] = envh;
	envp[1] = envs;
	envp[2] = NULL;
	rc = harness_run(chk, envp, check_timeout, &hc, &e);
	if (rc == 0 && server_counts(&h, &r1, &h1) < 0)
		r1 = r0 + 1;            /* the supervisor is gone: the server failed */
	{
		struct err se;
		err_clear(&se);
		(void)lc_stop(&h, s.grace_s, 0, &stopped, &se);
	}
	if (rc < 0)
		goto fail_stopped;
	failed_server = r1 > r0 || h1 > h0;
	if (hc.signal)
		code = 128 + hc.signal;
	else if (hc.timed_out)
		code = WITH_EXIT_TIMEOUT;
	else if (WIFSIGNALED(hc.status))
		code = 128 + WTERMSIG(hc.status);
	else if (WEXITSTATUS(hc.status) != 0)
		code = WEXITSTATUS(hc.status);
	else if (failed_server && !allow)
		code = WITH_EXIT_SERVER_FAILED;
	else
		code = 0;
	out_begin(&o, code == 0 ? "passed" : "failed");
	jsonw_kint(&o.w, "exitCode", code);
	jsonw_kint(&o.w, "serverPid", res.server_pid);
	jsonw_kint(&o.w, "serverRestarts", r1 - r0);
	jsonw_kint(&o.w, "unhealthyRestarts", h1 - h0);
	jsonw_key(&o.w, "check");
	jsonw_obj_begin(&o.w);
	if (WIFSIGNALED(hc.status))
		jsonw_kint(&o.w, "signal", WTERMSIG(hc.status));
	else
		jsonw_kint(&o.w, "exitCode", WEXITSTATUS(hc.status));
	jsonw_kint(&o.w, "durationMs", hc.duration_ms);
	jsonw_kbool(&o.w, "timedOut", hc.timed_out);
	jsonw_obj_end(&o.w);
	if (hc.signal)
		jsonw_kint(&o.w, "harnessSignal", hc.signal);
	jsonw_kstr(&o.w, "home", h.root);
	jsonw_kbool(&o.w, "homeKept", !temp || keep);
	jsonw_kstr(&o.w, "log", h.srv_log);
	if (failed_server && code == WITH_EXIT_SERVER_FAILED)
		out_warn(&o, "the check passed, but the server was restarted or found unhealthy "
		    "while it ran (--allow-restarts accepts that)");
	if (code != 0)
		show_log(&h);
	out_common(&o, &h, &s);
	(void)out_end(&o);
	if (temp && !keep)
		(void)harness_remove_tree(home);
	return code;
fail:
	{
		struct err se;
		err_clear(&se);
		if (h.root != NULL)        /* the home was resolved */
			(void)lc_stop(&h, s.grace_s, 0, &stopped, &se);
	}
fail_stopped:
	if (h.root != NULL)        /* the home was resolved */
		show_log(&h);
	code = out_fail(&e);
	if (temp && !keep)
		(void)harness_remove_tree(home);
	return code;
}
