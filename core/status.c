/* status.c -- see status.h. */
#include "core/status.h"
#include "core/base/fsutil.h"
#include "core/base/jsonr.h"
#include "core/base/jsonw.h"
#include "platform/compat.h"

#include <errno.h>
#include <string.h>

#define STATUS_MAX_TOKENS 192

static void
put_time(struct jsonw *w, const char *key, int64_t ms)
{
	char t[32];

	jsonw_key(w, key);
	if (ms <= 0) {
		jsonw_null(w);
		return;
	}
	iso8601_ms(ms, t);
	jsonw_str(w, t);
}

int
status_format(const struct sup_status *st, char *buf, size_t cap)
{
	struct jsonw w;

	if (cap < 2)
		return -1;
	jsonw_init(&w, buf, cap - 1);
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "serverId", st->server_id);
	jsonw_kint(&w, "supervisorPid", st->sup_pid);
	jsonw_kint(&w, "supervisorStartTicks", (long long)st->sup_start_ticks);
	jsonw_kstr(&w, "bootId", st->boot_id);
	if (st->machine_id[0] != '\0') {
		jsonw_kstr(&w, "machineId", st->machine_id);
		jsonw_kstr(&w, "hostname", st->hostname);
	}
	put_time(&w, "startedAt", st->started_at);
	put_time(&w, "lastSeenAt", st->last_seen_at);
	jsonw_kstr(&w, "state", st->state);
	jsonw_kint(&w, "serverPid", st->server_pid);
	jsonw_kint(&w, "serverPgid", st->server_pgid);
	jsonw_kbool(&w, "ready", st->ready);
	put_time(&w, "readyAt", st->ready_at);
	jsonw_kint(&w, "incarnation", st->incarnation);
	jsonw_kint(&w, "restarts", st->restarts);
	if (st->has_last_exit) {
		jsonw_key(&w, "lastExit");
		jsonw_obj_begin(&w);
		if (st->last_exit_signal)
			jsonw_kint(&w, "signal", st->last_exit_signal);
		else
			jsonw_kint(&w, "code", st->last_exit_code);
		put_time(&w, "at", st->last_exit_at);
		jsonw_obj_end(&w);
	}
	put_time(&w, "nextRestartAt", st->next_restart_at);
	jsonw_kint(&w, "backoffMs", st->backoff_ms);
	jsonw_kstr(&w, "readiness", st->readiness);
	if (st->app_server_version[0])
		jsonw_kstr(&w, "appServerVersion", st->app_server_version);
	jsonw_kstr(&w, "socketPath", st->socket);
	jsonw_kstr(&w, "message", st->message);
	if (st->socket_activation) {
		jsonw_kbool(&w, "socketActivation", 1);
		jsonw_kint(&w, "socketRepairs", st->socket_repairs);
		put_time(&w, "lastSocketRepairAt", st->last_repair_at);
	}
	if (st->next_check_at > 0)
		put_time(&w, "nextCheckAt", st->next_check_at);
	if (st->checking)
		jsonw_kbool(&w, "updateRunning", 1);
	if (st->no_subreaper)
		jsonw_kbool(&w, "subreaper", 0);
	if (st->socket_missing)
		jsonw_kbool(&w, "socketMissing", 1);
	if (st->health_enabled) {
		jsonw_key(&w, "health");
		jsonw_obj_begin(&w);
		put_time(&w, "lastProbeAt", st->health_last_at);
		jsonw_kstr(&w, "lastResult", st->health_last_at == 0 ? "none" :
		    st->health_ok ? "ok" : "failed");
		if (!st->health_ok && st->health_why[0])
			jsonw_kstr(&w, "lastFailure", st->health_why);
		jsonw_kint(&w, "consecutiveFailures", st->health_failures);
		jsonw_kint(&w, "restarts", st->health_restarts);
		jsonw_obj_end(&w);
	}
	if (st->spawn_failures > 0) {
		jsonw_kint(&w, "spawnFailures", st->spawn_failures);
		jsonw_kstr(&w, "spawnError", st->spawn_error);
	}
	if (st->state_write_error[0] != '\0') {
		jsonw_kstr(&w, "stateWriteError", st->state_write_error);
		put_time(&w, "stateWriteErrorAt", st->state_write_error_at);
	}
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0)
		return -1;
	buf[w.len] = '\n';
	return (int)w.len + 1;
}

int
status_write(const char *path, const struct sup_status *st, struct err *e)
{
	/* mapped for the call, as in status_read */
	char *buf = compat_map(STATUS_MAX_BYTES);
	int n, rc = 0;

	if (buf == NULL)
		return err_sys(e, ERR_IO, "failed to write %s", path);
	if ((n = status_format(st, buf, STATUS_MAX_BYTES)) < 0)
		rc = err_set(e, ERR_IO, "status record too large");
	else if (fs_replace(path, buf, (size_t)n, 0600) < 0)
		rc = err_sys(e, ERR_IO, "failed to write %s", path);
	compat_unmap(buf, STATUS_MAX_BYTES);
	return rc;
}

static long long
get_num(const struct jsonr *r, int obj, const char *key)
{
	long long v = 0;

	(void)jsonr_int(r, jsonr_get(r, obj, key), &v);
	return v;
}

/* The text and tokens of one read, mapped for the call (compat_map): the
 * supervisor reads status.json before each write (record_taken), and 7 KB
 * of stack under that would stay resident in it for good. */
struct read_scratch {
	char buf[STATUS_MAX_BYTES];
	jsmntok_t tok[STATUS_MAX_TOKENS];
};

static int parse(const char *buf, size_t len, struct sup_status *st, jsmntok_t *tok, int ntok);

int
status_read(const char *path, struct sup_status *st, struct err *e)
{
	struct read_scratch *sc;
	size_t len;
	int rc = 0;

	memset(st, 0, sizeof *st);
	if ((sc = compat_map(sizeof *sc)) == NULL)
		return err_sys(e, ERR_IO, "cannot read %s", path);
	if (fs_read_file(path, sc->buf, sizeof sc->buf, &len) < 0) {
		rc = errno == ENOENT ? 1 : fs_read_fail(e, ERR_IO, "status file", path);
	} else if (parse(sc->buf, len, st, sc->tok, STATUS_MAX_TOKENS) < 0) {
		err_ctx_str(e, "path", path);
		rc = err_set(e, ERR_IO, "unreadable status file %s", path);
	}
	compat_unmap(sc, sizeof *sc);
	return rc;
}

int
status_parse(const char *buf, size_t len, struct sup_status *st)
{
	jsmntok_t tok[STATUS_MAX_TOKENS];

	return parse(buf, len, st, tok, STATUS_MAX_TOKENS);
}

static int
parse(const char *buf, size_t len, struct sup_status *st, jsmntok_t *tok, int ntok)
{
	struct jsonr r;
	int i;

	memset(st, 0, sizeof *st);
	if (jsonr_parse(&r, buf, len, tok, ntok) < 0 || jsonr_type(&r, 0) != JSMN_OBJECT)
		return -1;
	(void)jsonr_str(&r, jsonr_get(&r, 0, "serverId"), st->server_id, sizeof st->server_id);
	st->sup_pid = (long)get_num(&r, 0, "supervisorPid");
	st->sup_start_ticks = (unsigned long long)get_num(&r, 0, "supervisorStartTicks");
	(void)jsonr_str(&r, jsonr_get(&r, 0, "bootId"), st->boot_id, sizeof st->boot_id);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "machineId"), st->machine_id, sizeof st->machine_id);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "hostname"), st->hostname, sizeof st->hostname);
	st->started_at = jsonr_time(&r, 0, "startedAt");
	st->last_seen_at = jsonr_time(&r, 0, "lastSeenAt");
	(void)jsonr_str(&r, jsonr_get(&r, 0, "state"), st->state, sizeof st->state);
	st->server_pid = (long)get_num(&r, 0, "serverPid");
	st->server_pgid = (long)get_num(&r, 0, "serverPgid");
	(void)jsonr_bool(&r, jsonr_get(&r, 0, "ready"), &st->ready);
	st->ready_at = jsonr_time(&r, 0, "readyAt");
	st->incarnation = (int)get_num(&r, 0, "incarnation");
	st->restarts = (int)get_num(&r, 0, "restarts");
	i = jsonr_get(&r, 0, "lastExit");
	if (i >= 0 && jsonr_type(&r, i) == JSMN_OBJECT) {
		char t[40];
		st->has_last_exit = 1;
		st->last_exit_signal = (int)get_num(&r, i, "signal");
		st->last_exit_code = st->last_exit_signal ? -1 : (int)get_num(&r, i, "code");
		if (jsonr_str(&r, jsonr_get(&r, i, "at"), t, sizeof t) == 0)
			st->last_exit_at = iso8601_parse(t);
	}
	st->next_restart_at = jsonr_time(&r, 0, "nextRestartAt");
	st->backoff_ms = get_num(&r, 0, "backoffMs");
	(void)jsonr_str(&r, jsonr_get(&r, 0, "readiness"), st->readiness, sizeof st->readiness);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "appServerVersion"), st->app_server_version,
	    sizeof st->app_server_version);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "socketPath"), st->socket, sizeof st->socket);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "message"), st->message, sizeof st->message);
	(void)jsonr_bool(&r, jsonr_get(&r, 0, "socketActivation"), &st->socket_activation);
	st->socket_repairs = (int)get_num(&r, 0, "socketRepairs");
	st->last_repair_at = jsonr_time(&r, 0, "lastSocketRepairAt");
	st->next_check_at = jsonr_time(&r, 0, "nextCheckAt");
	(void)jsonr_bool(&r, jsonr_get(&r, 0, "updateRunning"), &st->checking);
	(void)jsonr_bool(&r, jsonr_get(&r, 0, "socketMissing"), &st->socket_missing);
	{
		int hi = jsonr_get(&r, 0, "health");
		if (hi >= 0 && jsonr_type(&r, hi) == JSMN_OBJECT) {
			char res[16] = "";
			st->health_enabled = 1;
			st->health_last_at = jsonr_time(&r, hi, "lastProbeAt");
			(void)jsonr_str(&r, jsonr_get(&r, hi, "lastResult"), res, sizeof res);
			st->health_ok = strcmp(res, "ok") == 0;
			(void)jsonr_str(&r, jsonr_get(&r, hi, "lastFailure"), st->health_why,
			    sizeof st->health_why);
			st->health_failures = (int)get_num(&r, hi, "consecutiveFailures");
			st->health_restarts = (int)get_num(&r, hi, "restarts");
		}
	}
	st->spawn_failures = (int)get_num(&r, 0, "spawnFailures");
	(void)jsonr_str(&r, jsonr_get(&r, 0, "spawnError"), st->spawn_error,
	    sizeof st->spawn_error);
	(void)jsonr_str(&r, jsonr_get(&r, 0, "stateWriteError"), st->state_write_error,
	    sizeof st->state_write_error);
	st->state_write_error_at = jsonr_time(&r, 0, "stateWriteErrorAt");
	{
		int sr = 1;
		(void)jsonr_bool(&r, jsonr_get(&r, 0, "subreaper"), &sr);
		st->no_subreaper = !sr;
	}
	return 0;
}
