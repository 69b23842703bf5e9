/*
 * supervisor.h -- `appd supervise`: the one resident process per home
 * (DESIGN.md "Processes").
 *
 * It prepares the control socket, spawns the server in its own process
 * group with stdout+stderr captured into state/app-server.log, decides
 * readiness (connect / notify / codex-initialize / none), restarts it by
 * the restart policy (the minimum interval of 1 s is between two starts,
 * doubling to 60 s while it keeps failing, reset after 60 s of
 * readiness), answers liveness on run/supervisor.sock (core/control.h)
 * and writes state/status.json on state changes only, runs the update
 * schedule, and on SIGTERM/SIGINT stops the server gracefully (TERM+CONT
 * to the group) then forcibly (KILL to the group and every adopted
 * descendant: it is a subreaper).  SIGHUP re-reads settings and restarts
 * the server in place; SIGUSR1 checks for an update.  Everything runs on
 * one reactor; an idle supervisor sleeps until an event.  How the work is
 * split between files: core/sup.h.
 *
 * The start CLI that launched it waits on `ready_fd` for one line:
 *   "ready <server pid>\n"  or  "fail <code> <exit code> <signal> <message>\n"
 * A failed initial start leaves nothing running.
 */
#ifndef APPD_SUPERVISOR_H
#define APPD_SUPERVISOR_H

#include "core/base/err.h"
#include "core/home.h"

struct sup_opts {
	int ready_fd;           /* -1: nobody waits */
	int ready_timeout_s;    /* 0: from settings */
	int reserved;           /* the launcher holds and publishes supervisor.pid */
	/* self-refresh: this image replaces a running supervisor (same pid)
	 * and adopts its server child and these inherited fds (-1: none) */
	int handover;
	int h_lfd, h_out_rd, h_out_wr, h_ctl;
	/* `appd run`: in the foreground of a service manager (core/mgrnotify.h),
	 * exiting with the server's status when the restart policy ends it */
	int foreground;
	int s6_fd;              /* s6 notification fd (>= 3), 0: none */
};

/* Run until stopped.  Returns the process exit status (0 after a clean
 * stop); `e` describes a failure to start. */
int supervisor_run(const struct home *h, const struct sup_opts *o, struct err *e);

struct sup_report {
	int ready;
	long server_pid;
	enum err_code code;
	int exit_code;          /* -1: none */
	int exit_signal;        /* 0: none */
	char message[768];
};

/* Parse the line a supervisor wrote on ready_fd.  0 or -1. */
int sup_report_parse(const char *line, struct sup_report *out);

/* The file `stop --grace S` writes before signalling (graceSeconds). */
#define SUP_STOP_REQUEST "stop-request.json"
/* The file `update` writes before SIGUSR1:
 * {"id":"…","checkOnly":bool,"fetchTimeoutMs":N[,"lockedBy":PID]}; lockedBy
 * names a requester that holds daemon.lock itself (bootstrap).  The answer is the
 * packages/updater.json whose requestId is that id. */
#define SUP_UPDATE_REQUEST "update-request.json"

#endif
