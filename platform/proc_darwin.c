/*
 * proc_darwin.c -- proc.h on macOS, through libproc and sysctl:
 *   proc_read        proc_pidinfo(PROC_PIDTBSDINFO): pbi_ppid, pbi_pgid,
 *                    pbi_status (SZOMB), pbi_start_tvsec/usec (the start
 *                    time, in microseconds); getsid(2) for the session
 *   proc_boot_id     sysctl kern.bootsessionuuid
 *   proc_exe         proc_pidpath(3)
 *   proc_self_exe    _NSGetExecutablePath(3), made absolute by realpath
 *   proc_children    proc_listchildpids(3)
 *   proc_list_all    proc_listallpids(3)
 *   signals          kill(2) after the identity check: macOS has no pidfd,
 *                    so a pid reused between the check and the kill is a
 *                    window the OS does not let us close; no sigqueue
 *                    either, so `value` does not travel
 *   subreaper        none on macOS: ENOSYS, and stop walks the tree
 *   proc_set_name    nothing: macOS names a process after its file
 * Source: libproc.h and sys/proc_info.h of the macOS SDK, sysctl(3),
 * dyld(3).
 */
#include "platform/proc.h"

#include <errno.h>
#include <libproc.h>
#include <limits.h>
#include <mach-o/dyld.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/proc_info.h>
#include <sys/sysctl.h>
#include <unistd.h>

#ifndef SZOMB
#define SZOMB 5                 /* sys/proc.h: process being exited */
#endif

int
proc_read(pid_t pid, struct proc_info *out)
{
	struct proc_bsdinfo bi;
	int n;

	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	memset(&bi, 0, sizeof bi);
	n = proc_pidinfo(pid, PROC_PIDTBSDINFO, 0, &bi, (int)sizeof bi);
	if (n <= 0)
		return errno == ESRCH || errno == 0 ? PROC_GONE : -1;
	if (n < (int)sizeof bi) {
		errno = EIO;
		return -1;
	}
	out->pid = pid;
	out->ppid = (pid_t)bi.pbi_ppid;
	out->pgid = (pid_t)bi.pbi_pgid;
	out->sid = getsid(pid);
	out->start_ticks = (unsigned long long)bi.pbi_start_tvsec * 1000000ull +
	    (unsigned long long)bi.pbi_start_tvusec;
	if (bi.pbi_status == SZOMB) {
		out->state = 'Z';
		return PROC_ZOMBIE;
	}
	out->state = 'R';
	return PROC_ALIVE;
}

int
proc_boot_id(char out[64])
{
	static char cached[64];
	size_t len = sizeof cached;

	if (cached[0] == '\0' &&
	    sysctlbyname("kern.bootsessionuuid", cached, &len, NULL, 0) < 0) {
		cached[0] = '\0';
		return -1;
	}
	cached[sizeof cached - 1] = '\0';
	memcpy(out, cached, 64);
	return 0;
}

int
proc_start_wall_ms(const struct proc_info *pi, long long *ms)
{
	*ms = (long long)(pi->start_ticks / 1000ull);   /* microseconds, wall */
	return 0;
}

int
proc_exe(pid_t pid, char *out, size_t cap)
{
	char buf[PROC_PIDPATHINFO_MAXSIZE];
	int n = proc_pidpath(pid, buf, sizeof buf);

	if (n <= 0)
		return -1;
	if ((size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
	return 0;
}

int
proc_self_exe(char *out, size_t cap)
{
	char raw[PATH_MAX], abs[PATH_MAX];
	uint32_t len = sizeof raw;
	size_t n;

	if (_NSGetExecutablePath(raw, &len) != 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (realpath(raw, abs) == NULL)
		return -1;
	n = strlen(abs);
	if (n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, abs, n + 1);
	return 0;
}

int
proc_pidfd_open(pid_t pid)
{
	(void)pid;
	errno = ENOSYS;
	return -1;
}

int
proc_signal_ident(pid_t pid, unsigned long long start_ticks, int sig, int value)
{
	int m = proc_matches(pid, start_ticks, NULL);

	(void)value;
	if (m <= 0) {
		if (m == 0)
			errno = ESRCH;
		return -1;
	}
	return kill(pid, sig);
}

int
proc_children(pid_t ppid, pid_t *out, int cap)
{
	int n = proc_listchildpids(ppid, out, cap * (int)sizeof(pid_t));

	if (n < 0)
		return -1;
	return n > cap ? cap : n;
}

int
proc_list_all(pid_t *out, int cap)
{
	int n = proc_listallpids(out, cap * (int)sizeof(pid_t));

	if (n < 0)
		return -1;
	return n > cap ? cap : n;
}

int
proc_set_subreaper(void)
{
	errno = ENOSYS;
	return -1;
}

int
proc_set_name(const char *name)
{
	(void)name;
	errno = ENOSYS;
	return -1;
}

void
proc_exec_self(char *const argv[], const char *fallback)
{
	proc_exec_path(argv, fallback);
}
