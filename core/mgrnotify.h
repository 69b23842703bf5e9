/*
 * mgrnotify.h -- telling the service manager that runs `appd run` how the
 * server is: systemd's notification protocol (sd_notify(3): datagrams of
 * "VAR=value" lines on the AF_UNIX socket named by $NOTIFY_SOCKET, "@"
 * for the abstract namespace) and s6's readiness notification (a newline
 * on the fd the service directory's notification-fd file names,
 * s6-supervise(8)).  runit and plain init get nothing: they have no
 * protocol.
 *
 * Sequence: READY=1 (s6: "\n", then the fd is closed) the first time the
 * server is ready; STATUS=<state: message> on every change after that;
 * STOPPING=1 when the supervisor begins to stop; WATCHDOG=1 every half
 * $WATCHDOG_USEC when the manager asks for it (and $WATCHDOG_PID, if set,
 * is ours).  mgr_init takes the variables out of the environment, so the
 * server never talks to the manager behind the supervisor's back.
 *
 * Memory: the caller's struct; nothing is allocated.  Failures to send
 * are ignored (the manager went away: nothing to tell).
 */
#ifndef APPD_MGRNOTIFY_H
#define APPD_MGRNOTIFY_H

#include <stdint.h>

#include "core/status.h"

struct mgr {
	int s6_fd;                  /* -1: none */
	int fd;                     /* the datagram socket, -1: none */
	char path[110];             /* $NOTIFY_SOCKET ("" none) */
	uint64_t watchdog_ms;       /* half of $WATCHDOG_USEC, 0: none */
	int ready_sent, stopping_sent;
	char last_status[160];
};

/* Take $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID out of the
 * environment; `s6_fd` is the notification fd (-1: none).  0, or -1/errno
 * when the notification socket cannot be created (nothing is sent then). */
int mgr_init(struct mgr *m, int s6_fd);
/* A record was published: READY, STATUS, STOPPING as above. */
void mgr_update(struct mgr *m, const struct sup_status *st);
/* WATCHDOG=1 (call every m->watchdog_ms). */
void mgr_watchdog(struct mgr *m);

#endif
