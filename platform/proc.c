/*
 * proc.c -- the parts of proc.h that are the same on every OS, built on
 * each OS file's proc_read and proc_list_all (proc_linux.c,
 * proc_freebsd.c, proc_darwin.c).
 */
#include "platform/proc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int
proc_matches(pid_t pid, unsigned long long start_ticks, const char *boot_id)
{
	struct proc_info pi;
	char boot[64];
	int st;

	if (boot_id != NULL && boot_id[0] != '\0') {
		if (proc_boot_id(boot) < 0)
			return -1;
		if (strcmp(boot, boot_id) != 0)
			return 0;
	}
	st = proc_read(pid, &pi);
	if (st < 0)
		return -1;
	return st == PROC_ALIVE && pi.start_ticks == start_ticks;
}

int
proc_signal_group(pid_t pgid, int sig)
{
	if (pgid <= 1) {
		errno = EINVAL;
		return -1;
	}
	if (kill(-pgid, sig) < 0 && errno != ESRCH)
		return -1;
	return 0;
}

/* 1 when `pid` is among the first `n` entries of `v`. */
static int
in_tree(const struct proc_info *v, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (v[i].pid == pid)
			return 1;
	return 0;
}

static int
is_root(const pid_t *roots, int nroots, pid_t pid)
{
	for (int i = 0; i < nroots; i++)
		if (roots[i] == pid)
			return 1;
	return 0;
}

int
proc_tree(const pid_t *roots, int nroots, pid_t pgid, pid_t sid,
	  struct proc_info *out, int cap)
{
	pid_t self = getpid();
	int n = 0, grew = 1;

	pid_t all[PROC_LIST_MAX];
	int nall = proc_list_all(all, PROC_LIST_MAX);

	if (nall < 0)
		return -1;
	/* one pass per generation found: a child listed before its parent
	 * is picked up by the next pass */
	while (grew && n < cap) {
		grew = 0;
		for (int i = 0; i < nall && n < cap; i++) {
			struct proc_info pi;
			pid_t pid = all[i];

			if (pid <= 1 || pid == self || is_root(roots, nroots, pid) ||
			    in_tree(out, n, pid))
				continue;
			if (proc_read(pid, &pi) != PROC_ALIVE)
				continue;
			if ((pgid > 1 && pi.pgid == pgid) || (sid > 1 && pi.sid == sid) ||
			    is_root(roots, nroots, pi.ppid) || in_tree(out, n, pi.ppid)) {
				out[n++] = pi;
				grew = 1;
			}
		}
	}
	return n;
}


int
proc_children_scan(pid_t ppid, pid_t *out, int cap)
{
	pid_t all[PROC_LIST_MAX];
	int n = 0, nall = proc_list_all(all, PROC_LIST_MAX);

	if (nall < 0)
		return -1;
	for (int i = 0; i < nall && n < cap; i++) {
		struct proc_info pi;
		if (proc_read(all[i], &pi) > 0 && pi.ppid == ppid)
			out[n++] = all[i];
	}
	return n;
}

int
proc_subreaper_refused(void)
{
	const char *force = getenv("APPD_NO_SUBREAPER");

	if (force != NULL && strcmp(force, "1") == 0) {
		errno = ENOSYS;
		return 1;
	}
	return 0;
}

void
proc_exec_path(char *const argv[], const char *fallback)
{
	char self[PATH_MAX];

	if (proc_self_exe(self, sizeof self) == 0)
		execv(self, argv);
	if (fallback != NULL)
		execv(fallback, argv);
}
