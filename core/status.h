/*
 * status.h -- the supervisor's published state (DESIGN.md "Liveness and
 * ownership"): state/status.json, written on state changes only, and the
 * same record answered live on run/supervisor.sock (core/control.h).
 *
 * The file is written only by the supervisor, always atomically
 * (fs_replace: renamed into place; not fsync'd, as it describes a live
 * process); read by `status`, `start`, `restart` and `stop` when the
 * supervisor does not answer.  `serverId` is
 * "<supervisor pid>-<start ticks>"; a supervisor never overwrites a file
 * whose serverId is another live supervisor's.  Times are wall-clock ms
 * since the epoch, written as ISO-8601 UTC.
 */
#ifndef APPD_STATUS_H
#define APPD_STATUS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/err.h"

struct sup_status {
	char server_id[64];
	long sup_pid;
	unsigned long long sup_start_ticks;
	char boot_id[64];
	int64_t started_at;
	int64_t last_seen_at;
	char state[16];          /* starting running backoff restarting stopping failed stopped */
	long server_pid;         /* 0: none */
	long server_pgid;
	int ready;
	int64_t ready_at;        /* 0: never */
	int incarnation;         /* how many times the server was spawned */
	int restarts;            /* crash restarts */
	int has_last_exit;
	int last_exit_code;      /* -1 when killed by a signal */
	int last_exit_signal;    /* 0 unless killed by a signal */
	int64_t last_exit_at;
	int64_t next_restart_at; /* 0: none scheduled */
	int64_t backoff_ms;
	char readiness[24];
	char app_server_version[64]; /* from the initialize probe, or empty */
	char socket[512];
	char message[256];       /* last notable event, for operators */
	int socket_activation;   /* the supervisor holds the listener */
	int socket_repairs;      /* times the socket path was re-created */
	int64_t last_repair_at;
	int64_t next_check_at;   /* updater: next scheduled check, 0: none */
	int checking;            /* updater: a check or an update is running */
	int no_subreaper;        /* this host gave the supervisor no subreaper */
	int socket_missing;      /* the running server's socket path was removed */
	char state_write_error[256]; /* the last state file write that failed
	                          * (status.json, app-server.pid), with its
	                          * cause; empty once a write succeeds again.
	                          * Only the live answer can carry it. */
	int64_t state_write_error_at;
	int spawn_failures;      /* server starts that failed before exec
	                          * (its pidfile, fork, exec), all told */
	char spawn_error[256];   /* the last such failure's cause */
	int health_enabled;      /* a liveness probe is configured */
	int64_t health_last_at;  /* the last probe's end, 0: none yet */
	int health_ok;           /* its result */
	int health_failures;     /* consecutive failures */
	int health_restarts;     /* restarts the probe caused */
	char health_why[160];    /* the last failure */
	char machine_id[128];    /* the host the supervisor runs on */
	char hostname[256];
};

/* The warning `status` and `stop` give when the supervisor recorded
 * no_subreaper (platform/proc.h proc_set_subreaper, proc_tree). */
#define STATUS_NO_SUBREAPER_WARNING \
	"this host gives the supervisor no child subreaper: stop finds the " \
	"server's descendants by walking the process tree, but one that " \
	"double-forks out of the server's process group and session cannot " \
	"be tracked here"

/* A record, as a file or as the control socket's answer, fits here. */
#define STATUS_MAX_BYTES 4096

/* The record as one JSON object and a newline into `buf` (`cap` bytes).
 * The length, or -1 when it does not fit. */
int status_format(const struct sup_status *st, char *buf, size_t cap);
/* Parse what status_format wrote (`len` bytes).  0, or -1 when it is not
 * such a JSON object; `st` is zeroed first, absent members stay 0. */
int status_parse(const char *buf, size_t len, struct sup_status *st);
/* status_format, written atomically to `path` (ERR_IO). */
int status_write(const char *path, const struct sup_status *st, struct err *e);
/* 0, 1 when the file does not exist (st zeroed), -1 on error. */
int status_read(const char *path, struct sup_status *st, struct err *e);

#endif
