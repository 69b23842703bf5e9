/* cmd_status.c -- `appd status`, `appd version`, `appd logs`: read-only,
 * no lock, never change a file. */
#include "cmd/appd.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/logcap.h"
#include "core/sockprep.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The shared preamble of the read-only commands: no arguments, a home
 * that is checked but never created, settings read leniently. */
static int
read_only_setup(int argc, const char *name, struct home *h, struct settings *s,
    struct err *se, struct err *e)
{
	err_clear(e);
	err_clear(se);
	if (argc > 1)
		return err_set(e, ERR_USAGE, "%s takes no arguments", name);
	if (cmd_home(h, 0, e) < 0)
		return -1;
	if (settings_load(h->settings, s, se) < 0)
		settings_defaults(s);
	return 0;
}

/* The "server" object of `status`: from the live record (`mine`), or the
 * last exit a supervisor that is gone left in its file. */
static void
out_server(struct out *o, const struct sup_status *st, int mine)
{
	jsonw_key(&o->w, "server");
	jsonw_obj_begin(&o->w);
	if (mine && st->server_pid > 0)
		jsonw_kint(&o->w, "pid", st->server_pid);
	jsonw_kstr(&o->w, "state", st->state);
	jsonw_ktime(&o->w, "readyAt", st->ready_at);
	jsonw_kint(&o->w, "incarnation", st->incarnation);
	jsonw_kint(&o->w, "restarts", st->restarts);
	if (st->has_last_exit) {
		jsonw_key(&o->w, "lastExit");
		jsonw_obj_begin(&o->w);
		if (st->last_exit_signal)
			jsonw_kint(&o->w, "signal", st->last_exit_signal);
		else
			jsonw_kint(&o->w, "code", st->last_exit_code);
		jsonw_ktime(&o->w, "at", st->last_exit_at);
		jsonw_obj_end(&o->w);
	}
	if (mine) {
		jsonw_ktime(&o->w, "nextRestartAt", st->next_restart_at);
		if (st->backoff_ms)
			jsonw_kint(&o->w, "backoffMs", st->backoff_ms);
	}
	if (st->message[0])
		jsonw_kstr(&o->w, "message", st->message);
	jsonw_obj_end(&o->w);
	if (mine && st->health_enabled) {
		jsonw_key(&o->w, "health");
		jsonw_obj_begin(&o->w);
		jsonw_ktime(&o->w, "lastProbeAt", st->health_last_at);
		jsonw_kstr(&o->w, "lastResult", st->health_last_at == 0 ? "none" :
		    st->health_ok ? "ok" : "failed");
		if (!st->health_ok && st->health_why[0])
			jsonw_kstr(&o->w, "lastFailure", st->health_why);
		jsonw_kint(&o->w, "consecutiveFailures", st->health_failures);
		jsonw_kint(&o->w, "restarts", st->health_restarts);
		jsonw_obj_end(&o->w);
	}
}

int
cmd_status(int argc, char **argv)
{
	static struct lc_view v;
	struct home h;
	struct settings s;
	struct err e, se;
	struct out o;
	const struct sup_status *st = &v.st;
	int mine;

	(void)argv;
	out_cache_only = 1;
	if (read_only_setup(argc, "status", &h, &s, &se, &e) < 0 || lc_view(&h, &v, &e) < 0)
		return out_fail(&e);
	mine = v.sup_active && v.have_st;
	out_begin(&o, v.state);
	if (v.sup_active)
		jsonw_kstr(&o.w, "backend", "pid");
	/* the live answer knows the server even while its pidfile is being
	 * rewritten for a new incarnation */
	if (v.fresh && st->server_pid > 0)
		jsonw_kint(&o.w, "pid", st->server_pid);
	else if (v.srv_active)
		jsonw_kint(&o.w, "pid", v.srv.pid);
	jsonw_kbool(&o.w, "ready", mine && st->ready && (v.fresh || v.srv_active));
	jsonw_key(&o.w, "supervisor");
	jsonw_obj_begin(&o.w);
	if (v.sup_recorded) {
		jsonw_kint(&o.w, "pid", v.sup.pid);
		jsonw_kbool(&o.w, "active", v.sup_active);
	}
	if (mine) {
		jsonw_kstr(&o.w, "serverId", st->server_id);
		jsonw_ktime(&o.w, "startedAt", st->started_at);
		jsonw_ktime(&o.w, "lastSeenAt", st->last_seen_at);
		jsonw_kbool(&o.w, "fresh", v.fresh);
		jsonw_kbool(&o.w, "subreaper", !st->no_subreaper);
	}
	jsonw_obj_end(&o.w);
	if (!v.sup_active) {
		/* the last record, for the last exit of a supervisor gone */
		struct err fe;
		err_clear(&fe);
		if (status_read(h.status, &v.st, &fe) != 0)
			memset(&v.st, 0, sizeof v.st);
	}
	if (mine || (!v.sup_active && st->has_last_exit))
		out_server(&o, st, mine);
	if (mine && st->socket_activation) {
		jsonw_key(&o.w, "socketActivation");
		jsonw_obj_begin(&o.w);
		jsonw_kint(&o.w, "repairs", st->socket_repairs);
		jsonw_ktime(&o.w, "lastRepairAt", st->last_repair_at);
		jsonw_obj_end(&o.w);
	}
	if (mine && st->socket_missing)
		jsonw_kbool(&o.w, "socketMissing", 1);
	if (mine && v.fresh && st->state_write_error[0] != '\0') {
		jsonw_key(&o.w, "stateFiles");
		jsonw_obj_begin(&o.w);
		jsonw_kbool(&o.w, "behind", 1);
		jsonw_kstr(&o.w, "error", st->state_write_error);
		jsonw_ktime(&o.w, "since", st->state_write_error_at);
		jsonw_obj_end(&o.w);
	}
	jsonw_kstr(&o.w, "readiness", readiness_name(s.readiness));
	if (s.readiness == READY_PROBE)
		jsonw_kstr(&o.w, "readinessProbe", settings_str(&s, s.ready_spec));
	out_updater(&o, &h, &s, mine ? st : NULL);
	jsonw_kstr(&o.w, "home", h.root);
	jsonw_key(&o.w, "host");
	jsonw_obj_begin(&o.w);
	jsonw_kstr(&o.w, "machineId", h.machine);
	jsonw_kstr(&o.w, "hostname", h.hostname);
	jsonw_kbool(&o.w, "ownsHome", !h.per_host);
	jsonw_obj_end(&o.w);
	if (v.foreign)
		jsonw_kstr(&o.w, "otherMachineId", v.sup.machine);
	{
		/* the other hosts sharing this home, as they recorded it */
		static struct sup_status others[8];
		int n = lc_other_hosts(&h, others, 8);

		if (n > 0) {
			jsonw_key(&o.w, "otherHosts");
			jsonw_arr_begin(&o.w);
			for (int i = 0; i < n; i++) {
				jsonw_obj_begin(&o.w);
				jsonw_kstr(&o.w, "machineId", others[i].machine_id);
				jsonw_kstr(&o.w, "hostname", others[i].hostname);
				jsonw_kstr(&o.w, "state", others[i].state);
				if (others[i].server_pid > 0)
					jsonw_kint(&o.w, "serverPid", others[i].server_pid);
				jsonw_ktime(&o.w, "lastSeenAt", others[i].last_seen_at);
				jsonw_obj_end(&o.w);
			}
			jsonw_arr_end(&o.w);
			for (int i = 0; i < n; i++) {
				char msg[512];
				if (strcmp(others[i].state, "stopped") == 0)
					continue;
				fmt_n(msg, sizeof msg, "%s on host %s (machine %s), which shares this "
				    "home; only this host's server is managed here",
				    others[i].state, others[i].hostname[0] ? others[i].hostname : "?",
				    others[i].machine_id[0] ? others[i].machine_id : "?");
				out_warn(&o, msg);
				break;
			}
		}
	}
	if (se.code != ERR_NONE)
		out_warn(&o, se.msg);
	if (mine && st->no_subreaper)
		out_warn(&o, STATUS_NO_SUBREAPER_WARNING);
	if (mine && v.fresh)
		out_state_behind(&o, st);
	out_common(&o, &h, &s);
	return out_end(&o);
}

int
cmd_version(int argc, char **argv)
{
	struct home h;
	struct settings s;
	struct pid_record sup;
	enum pidfile_state st;
	struct err e, se;
	struct out o;
	char v[64];
	int managed = 0, p;

	(void)argv;
	if (read_only_setup(argc, "version", &h, &s, &se, &e) < 0)
		return out_fail(&e);
	p = probe_server(&h, &s, v, sizeof v, &e);
	if (p <= 0) {
		err_ctx_str(&e, "socketPath", h.socket);
		if (p == 0)
			err_set(&e, ERR_NOT_RUNNING, "no app-server is answering on %s", h.socket);
		return out_fail(&e);
	}
	if (pidfile_peek(h.sup_pid, &st, &sup, &e) == 0 && st == PIDFILE_RUNNING)
		managed = pidrec_active(&sup) == 1;
	err_clear(&e);
	out_begin(&o, "running");
	if (managed)
		jsonw_kstr(&o.w, "backend", "pid");
	out_common(&o, &h, &s);
	out_server_version(&o, v);
	return out_end(&o);
}

int
cmd_logs(int argc, char **argv)
{
	static char buf[65537];
	struct home h;
	struct err e;
	int lines = 100, i, n;
	char *p;

	err_clear(&e);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lines") == 0) {
			if (arg_seconds("--lines", i + 1 < argc ? argv[++i] : NULL, 1, 100000,
			    &lines, &e) < 0)
				return out_fail(&e);
		} else {
			err_set(&e, ERR_USAGE, "unknown argument \"%s\" to logs", argv[i]);
			return out_fail(&e);
		}
	}
	if (cmd_home(&h, 0, &e) < 0)
		return out_fail(&e);
	if (log_tail(h.srv_log, sizeof buf - 1, buf, sizeof buf) < 0) {
		if (errno == ENOENT)
			return 0;
		err_sys(&e, ERR_IO, "cannot read %s", h.srv_log);
		return out_fail(&e);
	}
	/* keep the last `lines` lines */
	n = (int)strlen(buf);
	p = buf + n;
	if (n > 0 && buf[n - 1] == '\n')
		p--;
	for (i = 0; i < lines && p > buf; ) {
		p--;
		if (*p == '\n')
			i++;
	}
	if (*p == '\n' && i == lines)
		p++;
	(void)fd_write_all(1, p, strlen(p));
	return 0;
}
