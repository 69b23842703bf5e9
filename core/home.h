/*
 * home.h -- the appd home: where every state file lives (DESIGN.md "Home
 * and state files").  `APPD_HOME`, default `$HOME/.appd`, made absolute.
 */
#ifndef APPD_HOME_H
#define APPD_HOME_H

#include <limits.h>

#include "core/err.h"

struct home {
	char root[PATH_MAX];
	char state[PATH_MAX];
	char run[PATH_MAX];
	char packages[PATH_MAX];
	char current[PATH_MAX];          /* packages/current */
	char settings[PATH_MAX];
	char daemon_lock[PATH_MAX];
	char sup_pid[PATH_MAX];          /* state/supervisor.pid */
	char srv_pid[PATH_MAX];          /* state/app-server.pid */
	char status[PATH_MAX];           /* state/status.json */
	char srv_log[PATH_MAX];          /* state/app-server.log */
	char sup_log[PATH_MAX];          /* state/supervisor.log */
	char socket[PATH_MAX];           /* run/app-server.sock */
	char startup_lock[PATH_MAX];     /* run/startup.lock */
	char notify_sock[PATH_MAX];      /* run/notify.sock */
};

/* Fill every path from the environment.  0, or -1 (ERR_USAGE when
 * neither APPD_HOME nor HOME is set, ERR_IO when too long). */
int home_resolve(struct home *h, struct err *e);
/* Create root, state/ and run/ as 0700 where missing and refuse any
 * owned by someone else or writable by group/other. */
int home_prepare(const struct home *h, struct err *e);
/* The same checks, creating nothing; missing directories are fine. */
int home_check(const struct home *h, struct err *e);

#endif
