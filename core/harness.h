/*
 * harness.h -- `appd with`: run a CI job's check against a server appd
 * started, then always tear the server down (the glue a job writes around
 * start/stop by hand, like npm's start-server-and-test, with appd's
 * process-tree cleanup).  This part runs the CHECK command.
 *
 * The check runs in its own process group with stdin inherited, its
 * stdout sent to our stderr (stdout carries the one JSON summary), `env`
 * (NAME=VALUE strings) added to its environment and no other fd of ours.  SIGINT, SIGTERM
 * and SIGHUP to the harness are passed on to the check's group (TERM;
 * KILL 5 s later), as is the end of `timeout_s` (0: none); the harness
 * returns only once the check is reaped.  No sleeps: the check's exit,
 * the signals and the deadlines are reactor events.
 */
#ifndef APPD_HARNESS_H
#define APPD_HARNESS_H

#include <stdint.h>

#include "core/base/err.h"

struct harness_check {
	int status;             /* wait status of the check */
	int timed_out;          /* timeout_s passed first */
	int signal;             /* the signal the harness got, 0: none */
	int64_t duration_ms;
};

/* Run `argv` (argv[0] looked up in PATH) as above, through core/spawn.h
 * (signals reset, no fd of ours inherited).  0 with `r` filled, or -1
 * with `e` (ERR_SPAWN naming the program and the exec error) when it
 * could not be started. */
int harness_run(char *const argv[], char *const env[], int timeout_s,
		struct harness_check *r, struct err *e);

/* Remove the directory tree `path` (a temporary home): entries are
 * removed, symlinks never followed.  0, or -1/errno. */
int harness_remove_tree(const char *path);

#endif
