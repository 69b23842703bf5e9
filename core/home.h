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

/* The paths point into `store`, filled in order by home_resolve (and
 * again by home_claim), so a process touches only the bytes it uses: a
 * home costs its idle supervisor well under a page.  Not to be copied by
 * value (the pointers would name the copy's source). */
#define HOME_NPATHS 20
struct home {
	const char *root;
	const char *state;
	const char *run;
	const char *host_file;                /* host.json */
	const char *hosts;                    /* hosts/ */
	const char *packages;
	const char *current;                  /* packages/current */
	const char *settings;
	const char *daemon_lock;
	const char *sup_pid;                  /* state/supervisor.pid */
	const char *srv_pid;                  /* state/app-server.pid */
	const char *status;                   /* state/status.json */
	const char *srv_log;                  /* state/app-server.log */
	const char *sup_log;                  /* state/supervisor.log */
	const char *socket;                   /* run/app-server.sock */
	const char *startup_lock;             /* run/startup.lock */
	const char *notify_sock;              /* run/notify.sock */
	const char *ctl_sock;                 /* run/supervisor.sock: the supervisor's control socket */
	const char *anchor;                   /* state/listener.sock: the activated listener */
	int per_host;                         /* state/, run/ under hosts/<machine> */
	unsigned used;                        /* bytes of store in use */
	unsigned root_end;                    /* where the paths after root begin */
	char machine[MACHINE_ID_MAX];         /* this host's machine id */
	char owner[MACHINE_ID_MAX];           /* host.json's; "" when none yet */
	char hostname[HOME_HOSTNAME_MAX];
	char store[HOME_NPATHS * HOME_PATH_MAX];
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
