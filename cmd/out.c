/* out.c -- JSON output and shared argument handling for cmd/. */
#include "cmd/appd.h"
#include "platform/target.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/probe.h"
#include "platform/compat.h"
#include "core/update/install.h"
#include "core/lock.h"
#include "core/unmanaged.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
out_begin(struct out *o, const char *status)
{
	o->nwarn = 0;
	jsonw_init(&o->w, o->buf, sizeof o->buf - 1);
	jsonw_obj_begin(&o->w);
	jsonw_kstr(&o->w, "status", status);
}

void
out_warn(struct out *o, const char *msg)
{
	if (o->nwarn < 4)
		str_fmt(o->warnings[o->nwarn++], sizeof o->warnings[0], "%s", msg);
}

const struct unmanaged *
cmd_unmanaged(const struct home *h)
{
	static struct unmanaged u;
	static int done, found;
	struct err e;

	if (!done) {
		err_clear(&e);
		found = unmanaged_identify(h->socket, &u, &e) == 1;
		done = 1;
	}
	return found ? &u : NULL;
}

int
err_unmanaged(const struct home *h, struct err *e)
{
	const struct unmanaged *u = cmd_unmanaged(h);

	err_ctx_str(e, "socketPath", h->socket);
	if (u == NULL || u->pid <= 0)
		return err_set(e, ERR_UNMANAGED, UNMANAGED_MSG);
	err_ctx_obj(e, "unmanaged", u->json);
	return err_set(e, ERR_UNMANAGED, UNMANAGED_MSG ": pid %ld (%s), uid %ld; "
	    "`appd stop --unmanaged` stops it%s", u->pid, u->exe[0] ? u->exe : "?", u->uid,
	    u->uid == (long)geteuid() ? "" : " (not as this user: it is another user's)");
}

void
out_state_behind(struct out *o, const struct sup_status *st)
{
	char msg[512];

	if (st->state_write_error[0] == '\0')
		return;
	str_fmt(msg, sizeof msg, "the supervisor cannot write its state files (%s): "
	    "this is its live state; the files on disk are behind until a write "
	    "succeeds", st->state_write_error);
	out_warn(o, msg);
}

/* Only `status` sets this: it must stay fast and change nothing, so it
 * reports managedVersion from the cache alone. */
int out_cache_only;

static const char *
managed(const struct home *h, const struct settings *s, const char **version)
{
	static char ver[64];
	static const char *path;
	static int done;

	if (!done && s != NULL)
		path = probe_managed(h, s, out_cache_only, ver, sizeof ver);
	done = 1;
	*version = ver[0] ? ver : NULL;
	return path;
}

void
err_managed(struct err *e, const struct home *h, const struct settings *s)
{
	const char *v, *path = managed(h, s, &v);

	if (path != NULL)
		err_ctx_str(e, "managedPath", path);
	if (v != NULL)
		err_ctx_str(e, "managedVersion", v);
}

void
out_server_version(struct out *o, const char *v)
{
	if (v != NULL && v[0] != '\0')
		jsonw_kstr(&o->w, "appServerVersion", v);
}

void
out_common(struct out *o, const struct home *h, const struct settings *s)
{
	const char *v, *path = managed(h, s, &v);

	if (path != NULL)
		jsonw_kstr(&o->w, "managedPath", path);
	jsonw_key(&o->w, "managedVersion");
	if (v != NULL)
		jsonw_str(&o->w, v);
	else
		jsonw_null(&o->w);
	jsonw_kstr(&o->w, "socketPath", h->socket);
	jsonw_kstr(&o->w, "cliVersion", APPD_VERSION);
	jsonw_kstr(&o->w, "target", APPD_TARGET);
}

int
out_end(struct out *o)
{
	if (o->nwarn > 0) {
		jsonw_key(&o->w, "warnings");
		jsonw_arr_begin(&o->w);
		for (int i = 0; i < o->nwarn; i++)
			jsonw_str(&o->w, o->warnings[i]);
		jsonw_arr_end(&o->w);
	}
	jsonw_obj_end(&o->w);
	jsonw_finish(&o->w);
	o->buf[o->w.len] = '\n';
	(void)fd_write_all(1, o->buf, o->w.len + 1);
	return 0;
}

int
out_fail(const struct err *e)
{
	static char buf[32768];
	struct jsonw w;
	enum err_code code = e->code == ERR_NONE ? ERR_OTHER : e->code;
	int i;

	jsonw_init(&w, buf, sizeof buf - 1);
	jsonw_obj_begin(&w);
	jsonw_kstr(&w, "status", "error");
	jsonw_kstr(&w, "error", err_code_name(code));
	jsonw_kstr(&w, "message", e->msg);
	for (i = 0; i < e->nctx; i++) {
		jsonw_key(&w, e->ctx[i].key);
		if (e->ctx[i].is_num)
			jsonw_int(&w, e->ctx[i].num);
		else
			jsonw_str(&w, e->ctx[i].str);
	}
	if (e->obj_key != NULL && e->obj_json != NULL) {
		jsonw_key(&w, e->obj_key);
		jsonw_raw(&w, e->obj_json, strlen(e->obj_json));
	}
	if (e->tail != NULL)
		jsonw_kstr(&w, "logTail", e->tail);
	jsonw_kstr(&w, "cliVersion", APPD_VERSION);
	jsonw_obj_end(&w);
	jsonw_finish(&w);
	buf[w.len] = '\n';
	(void)fd_write_all(1, buf, w.len + 1);
	fmt_fd(2, "appd: %s\n", e->msg);
	return err_exit_status(code);
}

int
arg_seconds(const char *flag, const char *val, int lo, int hi, int *out, struct err *e)
{
	char *end;
	long v;

	if (val == NULL)
		return err_set(e, ERR_USAGE, "%s needs a number of seconds", flag);
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || *end || end == val || v < lo || v > hi)
		return err_set(e, ERR_USAGE, "%s takes whole seconds from %d to %d, not \"%s\"",
		    flag, lo, hi, val);
	*out = (int)v;
	return 0;
}

int
cmd_home(struct home *h, int create, struct err *e)
{
	if (home_resolve(h, e) < 0)
		return -1;
	if (create && home_claim(h, e) < 0)
		return -1;
	return create ? home_prepare(h, e) : home_check(h, e);
}

int
cmd_lock(const struct home *h, const char *command, int timeout_s, struct err *e)
{
	int fd = lock_acquire(h->daemon_lock, (int64_t)timeout_s * 1000);

	if (fd < 0) {
		struct lock_holder lh;

		err_ctx_str(e, "path", h->daemon_lock);
		if (errno != ETIMEDOUT)
			return err_sys(e, ERR_IO, "failed to open daemon operation lock %s",
			    h->daemon_lock);
		if (lock_read_holder(h->daemon_lock, &lh) == 0) {
			char since[32];
			iso8601_ms(lh.since_ms, since);
			err_ctx_num(e, "holderPid", lh.pid);
			err_ctx_str(e, "holderCommand", lh.command);
			err_ctx_str(e, "holderSince", since);
			return err_set(e, ERR_BUSY,
			    "timed out after %d s waiting for daemon operation lock %s, "
			    "held by pid %ld (%s) since %s", timeout_s, h->daemon_lock,
			    lh.pid, lh.command, since);
		}
		return err_set(e, ERR_BUSY, "timed out after %d s waiting for daemon operation lock %s",
		    timeout_s, h->daemon_lock);
	}
	(void)lock_note_holder(fd, command);
	return fd;
}

int
arg_abspath(const char **path, char *store, size_t cap, struct err *e)
{
	char cwd[PATH_MAX];

	if ((*path)[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof cwd) == NULL || str_fmt(store, cap, "%s/%s", cwd, *path) < 0)
		return err_set(e, ERR_USAGE, "cannot make %s absolute", *path);
	*path = store;
	return 0;
}
