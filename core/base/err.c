/* err.c -- see err.h. */
#include "core/base/err.h"
#include "core/base/fmt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void
err_clear(struct err *e)
{
	e->code = ERR_NONE;
	e->msg[0] = '\0';
	e->nctx = 0;
	e->tail = NULL;
	e->obj_key = e->obj_json = NULL;
}

void
err_ctx_obj(struct err *e, const char *key, const char *json)
{
	e->obj_key = key;
	e->obj_json = json;
}

void
err_vset(struct err *e, enum err_code code, const char *fmt, va_list ap)
{
	e->code = code;
	fmt_v(e->msg, sizeof e->msg, fmt, ap);
}

int
err_set(struct err *e, enum err_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

int
err_sys(struct err *e, enum err_code code, const char *fmt, ...)
{
	int saved = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, code, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	if (n < sizeof e->msg)
		fmt_n(e->msg + n, sizeof e->msg - n, ": %s", strerror(saved));
	errno = saved;
	return -1;
}

static struct err_ctx *
err_ctx_slot(struct err *e, const char *key)
{
	int i;

	for (i = 0; i < e->nctx; i++)
		if (strcmp(e->ctx[i].key, key) == 0)
			return &e->ctx[i];
	if (e->nctx >= ERR_CTX_MAX)
		return NULL;
	e->ctx[e->nctx].key = key;
	return &e->ctx[e->nctx++];
}

void
err_ctx_str(struct err *e, const char *key, const char *val)
{
	struct err_ctx *c = err_ctx_slot(e, key);

	if (c == NULL)
		return;
	c->is_num = 0;
	fmt_n(c->str, sizeof c->str, "%s", val ? val : "");
}

void
err_ctx_num(struct err *e, const char *key, long long val)
{
	struct err_ctx *c = err_ctx_slot(e, key);

	if (c == NULL)
		return;
	c->is_num = 1;
	c->num = val;
}

static const struct {
	const char *name;
	int status;
} err_table[] = {
	[ERR_NONE] = { "none", 0 },
	[ERR_OTHER] = { "error", 1 },
	[ERR_USAGE] = { "usage", 2 },
	[ERR_BUSY] = { "busy", 3 },
	[ERR_NOT_RUNNING] = { "notRunning", 4 },
	[ERR_UNMANAGED] = { "unmanagedServer", 5 },
	[ERR_SOCKET_IN_USE] = { "socketInUse", 5 },
	[ERR_NOT_READY] = { "notReady", 6 },
	[ERR_EXITED] = { "exitedBeforeReady", 6 },
	[ERR_REJECTED] = { "rejected", 7 },
	[ERR_SETTINGS] = { "invalidSettings", 1 },
	[ERR_PIDFILE] = { "invalidPidfile", 1 },
	[ERR_UNSAFE_HOME] = { "unsafeHome", 1 },
	[ERR_SPAWN] = { "spawnFailed", 1 },
	[ERR_IO] = { "io", 1 },
	[ERR_STOP_TIMEOUT] = { "stopTimeout", 1 },
};

const char *
err_code_name(enum err_code code)
{
	if ((unsigned)code >= sizeof err_table / sizeof err_table[0])
		return "error";
	return err_table[code].name;
}

int
err_exit_status(enum err_code code)
{
	if ((unsigned)code >= sizeof err_table / sizeof err_table[0])
		return 1;
	return err_table[code].status;
}
