/*
 * proc_freebsd.c -- proc.h on FreeBSD, through sysctl(3) and procctl(2):
 *   proc_read        sysctl {CTL_KERN, KERN_PROC, KERN_PROC_PID, pid}:
 *                    kinfo_proc ki_ppid, ki_pgid, ki_sid, ki_stat (SZOMB),
 *                    ki_start (the start time, in microseconds)
 *   proc_boot_id     sysctl kern.boottime, as "<sec>.<usec>"
 *   proc_exe         sysctl {CTL_KERN, KERN_PROC, KERN_PROC_PATHNAME, pid}
 *   proc_children    procctl(PROC_REAP_GETPIDS) for our own children while
 *                    we are a reaper (REAPER_PIDINFO_CHILD), else the
 *                    process table filtered on ki_ppid
 *   proc_list_all    sysctl {CTL_KERN, KERN_PROC, KERN_PROC_PROC}
 *   signals          kill(2)/sigqueue(2) after the identity check (no
 *                    pidfd: pdfork(2) descriptors exist only for children
 *                    made with pdfork)
 *   subreaper        procctl(P_PID, getpid(), PROC_REAP_ACQUIRE)
 *   proc_set_name    nothing: p_comm is set by execve only
 * Source: sysctl(3), procctl(2), kinfo_proc in sys/user.h (FreeBSD 14).
 * Written to those man pages; no FreeBSD headers or host were available
 * to compile it (README "Platforms").
 */
#include "platform/proc.h"
#include "platform/compat.h"

#include <sys/param.h>
#include <sys/procctl.h>
#include <sys/sysctl.h>
#include <sys/user.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
proc_read(pid_t pid, struct proc_info *out)
{
	int mib[4] = { CTL_KERN, KERN_PROC, KERN_PROC_PID, (int)pid };
	struct kinfo_proc kp;
	size_t len = sizeof kp;

	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	if (sysctl(mib, 4, &kp, &len, NULL, 0) < 0)
		return errno == ESRCH ? PROC_GONE : -1;
	if (len < sizeof kp)
		return PROC_GONE;       /* no such process: an empty answer */
	out->pid = pid;
	out->ppid = kp.ki_ppid;
	out->pgid = kp.ki_pgid;
	out->sid = kp.ki_sid;
	out->start_ticks = (unsigned long long)kp.ki_start.tv_sec * 1000000ull +
	    (unsigned long long)kp.ki_start.tv_usec;
	if (kp.ki_stat == SZOMB) {
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
	struct timeval bt;
	size_t len = sizeof bt;

	if (cached[0] == '\0') {
		if (sysctlbyname("kern.boottime", &bt, &len, NULL, 0) < 0)
			return -1;
		snprintf(cached, sizeof cached, "%lld.%06ld", (long long)bt.tv_sec,
		    (long)bt.tv_usec);
	}
	memcpy(out, cached, 64);
	return 0;
}

static int
path_of(pid_t pid, char *out, size_t cap)
{
	int mib[4] = { CTL_KERN, KERN_PROC, KERN_PROC_PATHNAME, (int)pid };
	size_t len = cap;

	if (sysctl(mib, 4, out, &len, NULL, 0) < 0)
		return -1;
	if (len == 0 || len > cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	out[len - 1] = '\0';
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
	return path_of(pid, out, cap);
}

int
proc_self_exe(char *out, size_t cap)
{
	return path_of(-1, out, cap);
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

	if (m <= 0) {
		if (m == 0)
			errno = ESRCH;
		return -1;
	}
	if (value != 0) {
		union sigval v;
		v.sival_int = value;
		return sigqueue(pid, sig, v);
	}
	return kill(pid, sig);
}

int
proc_list_all(pid_t *out, int cap)
{
	int mib[3] = { CTL_KERN, KERN_PROC, KERN_PROC_PROC };
	struct kinfo_proc *kp;
	size_t len = 0, mapped;
	int n = 0;

	if (sysctl(mib, 3, NULL, &len, NULL, 0) < 0)
		return -1;
	len += len / 4;         /* room for processes started meanwhile */
	mapped = len;
	if ((kp = compat_map(mapped)) == NULL)
		return -1;
	if (sysctl(mib, 3, kp, &len, NULL, 0) < 0) {
		int e = errno;
		compat_unmap(kp, mapped);
		errno = e;
		return -1;
	}
	for (size_t i = 0; i < len / sizeof *kp && n < cap; i++)
		out[n++] = kp[i].ki_pid;
	compat_unmap(kp, mapped);
	return n;
}

int
proc_children(pid_t ppid, pid_t *out, int cap)
{
	struct procctl_reaper_pidinfo info[256];
	struct procctl_reaper_pids rp;
	int n = 0;

	if (ppid == getpid()) {
		memset(&rp, 0, sizeof rp);
		rp.rp_count = sizeof info / sizeof info[0];
		rp.rp_pids = info;
		if (procctl(P_PID, getpid(), PROC_REAP_GETPIDS, &rp) == 0) {
			for (unsigned i = 0; i < rp.rp_count && n < cap; i++)
				if ((info[i].pi_flags & REAPER_PIDINFO_VALID) &&
				    (info[i].pi_flags & REAPER_PIDINFO_CHILD))
					out[n++] = info[i].pi_pid;
			return n;
		}
	}
	return proc_children_scan(ppid, out, cap);
}

int
proc_set_subreaper(void)
{
	if (proc_subreaper_refused())
		return -1;
	return procctl(P_PID, getpid(), PROC_REAP_ACQUIRE, NULL);
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
