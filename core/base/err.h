/*
 * err.h -- the error record every core function fills on failure.
 *
 * Core functions return -1 (or NULL) and describe the failure in a
 * caller-owned `struct err`: a stable code (the JSON "error" member), a
 * human message, and a few context members that cmd/ prints as extra JSON
 * fields.  Only cmd/ prints and exits; the exit status comes from
 * err_exit_status().  Codes and statuses are listed in README.md.
 */
#ifndef APPD_ERR_H
#define APPD_ERR_H

#include <stdarg.h>

enum err_code {
	ERR_NONE = 0,
	ERR_OTHER,          /* "error"            exit 1 */
	ERR_USAGE,          /* "usage"            exit 2 */
	ERR_BUSY,           /* "busy"             exit 3 */
	ERR_NOT_RUNNING,    /* "notRunning"       exit 4 */
	ERR_UNMANAGED,      /* "unmanagedServer"  exit 5 */
	ERR_SOCKET_IN_USE,  /* "socketInUse"      exit 5 */
	ERR_NOT_READY,      /* "notReady"         exit 6 */
	ERR_EXITED,         /* "exitedBeforeReady" exit 6 */
	ERR_REJECTED,       /* "rejected"         exit 7 */
	ERR_SETTINGS,       /* "invalidSettings"  exit 1 */
	ERR_PIDFILE,        /* "invalidPidfile"   exit 1 */
	ERR_UNSAFE_HOME,    /* "unsafeHome"       exit 1 */
	ERR_SPAWN,          /* "spawnFailed"      exit 1 */
	ERR_IO,             /* "io"               exit 1 */
	ERR_STOP_TIMEOUT    /* "stopTimeout"      exit 1 */
};

#define ERR_CTX_MAX 8
#define ERR_TAIL_MAX 4096

struct err_ctx {
	const char *key;        /* static string */
	int is_num;
	long long num;
	char str[256];
};

/* The small members first: err_clear touches only the first bytes, so a
 * static record that is cleared but never filled costs no extra page. */
struct err {
	enum err_code code;
	int nctx;
	const char *tail;              /* log tail (<= ERR_TAIL_MAX bytes), not
	                                * owned: points at caller storage */
	const char *obj_key;           /* one nested member: key (static) and */
	const char *obj_json;          /* a JSON object's text, caller storage */
	char msg[768];
	struct err_ctx ctx[ERR_CTX_MAX];
};

/* Reset `e` to "no error". */
void err_clear(struct err *e);
/* Set code and printf-style message; returns -1 so callers can
 * `return err_set(e, ...)`.  Context is kept. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* err_set with a va_list (for functions that wrap it). */
void err_vset(struct err *e, enum err_code code, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* Same, appending ": strerror(errno)" (errno read at call time). */
int err_sys(struct err *e, enum err_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Add a context member (string or number); silently dropped when full. */
void err_ctx_str(struct err *e, const char *key, const char *val);
void err_ctx_num(struct err *e, const char *key, long long val);
/* One member whose value is the JSON object text `json` (not copied: it
 * must outlive the report); a later call replaces it. */
void err_ctx_obj(struct err *e, const char *key, const char *json);
/* Stable JSON name of a code, and the process exit status for it. */
const char *err_code_name(enum err_code code);
int err_exit_status(enum err_code code);

#endif
