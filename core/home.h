/*
 * home.h -- the appd home: where every state file lives (DESIGN.md "Home
 * and state files").  `APPD_HOME`, default `$HOME/.appd`, made absolute.
 */
#ifndef APPD_HOME_H
#define APPD_HOME_H

#include <limits.h>

/* Every path under the home fits here; the control socket must fit
 * sun_path (108 bytes) anyway, so a longer home is refused early. */
#define HOME_PATH_MAX 512

#include "core/base/err.h"
#include "core/update/machineid.h"

/*
 * Homes shared between hosts (NFS and the like).  settings.json and
 * packages/ are shared: every write to them is an atomic rename.  What is
 * host-local -- pidfiles, locks, status, logs and sockets -- must never be
 * shared, so the home names the host that owns its state/ and run/ in
 * host.json ({"machineId", "hostname"}, created once with link(2), which
 * is atomic on NFS too); that host uses state/ and run/ as DESIGN.md lays
 * them out, and every other host uses its own hosts/<machine id>/state and
 * hosts/<machine id>/run.  A home without host.json belongs to the first
 * host that prepares it (`start`); read-only commands take it as their
 * own.  The machine id is machine-id(5)'s, or "host-<hostname>" on a host
 * without one.
 */
#define HOME_HOSTNAME_MAX 256

struct home {
	char root[HOME_PATH_MAX];
	char state[HOME_PATH_MAX];
	char run[HOME_PATH_MAX];
	char host_file[HOME_PATH_MAX];        /* host.json */
	char hosts[HOME_PATH_MAX];            /* hosts/ */
	char machine[MACHINE_ID_MAX];         /* this host's machine id */
	char hostname[HOME_HOSTNAME_MAX];
	char owner[MACHINE_ID_MAX];           /* host.json's; "" when none yet */
	int per_host;                         /* state/, run/ under hosts/<machine> */
	char packages[HOME_PATH_MAX];
	char current[HOME_PATH_MAX];          /* packages/current */
	char settings[HOME_PATH_MAX];
	char daemon_lock[HOME_PATH_MAX];
	char sup_pid[HOME_PATH_MAX];          /* state/supervisor.pid */
	char srv_pid[HOME_PATH_MAX];          /* state/app-server.pid */
	char status[HOME_PATH_MAX];           /* state/status.json */
	char srv_log[HOME_PATH_MAX];          /* state/app-server.log */
	char sup_log[HOME_PATH_MAX];          /* state/supervisor.log */
	char socket[HOME_PATH_MAX];           /* run/app-server.sock */
	char startup_lock[HOME_PATH_MAX];     /* run/startup.lock */
	char notify_sock[HOME_PATH_MAX];      /* run/notify.sock */
	char ctl_sock[HOME_PATH_MAX];         /* run/supervisor.sock: the supervisor's control socket */
	char anchor[HOME_PATH_MAX];      /* state/listener.sock: the activated listener */
};

/* This host's machine id (see above), computed once; never NULL. */
const char *home_machine_id(void);
/* This host's name (gethostname(3)), computed once; never NULL. */
const char *home_hostname(void);

/* Fill every path from the environment (reading host.json).  0, or -1
 * (ERR_USAGE when neither APPD_HOME nor HOME is set, ERR_IO when too
 * long). */
int home_resolve(struct home *h, struct err *e);
/* Create root, state/ and run/ (this host's: see above) as 0700 where missing and refuse any
 * owned by someone else or writable by group/other. */
int home_prepare(const struct home *h, struct err *e);
/* Write host.json naming this host when the home has none (the first
 * host to prepare it owns state/ and run/); a host that loses the race
 * switches `h` to its per-host paths.  0, or -1 with ERR_IO. */
int home_claim(struct home *h, struct err *e);
/* The same checks, creating nothing; missing directories are fine. */
int home_check(const struct home *h, struct err *e);
/* Why nothing can be recorded in the home's state directory: EROFS (a
 * read-only file system: a remount, an emergency), EPERM (immutable,
 * chattr +i) or EACCES; 0 when it can be written.  access(2) with W_OK. */
int home_read_only(const struct home *h);

#endif
