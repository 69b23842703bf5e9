/*
 * proc.h -- process identity and signalling by identity, per OS.
 *
 * Identity = (boot id, pid, start time): a pid is reused, this triple is
 * not.  The start time's unit is the OS's own, compared only with itself.
 * Linux reads /proc/PID/stat (proc(5): field 3 state, 4 ppid, 5 pgrp, 6
 * session, 22 starttime in clock ticks since boot) and
 * /proc/sys/kernel/random/boot_id; FreeBSD sysctl KERN_PROC_PID
 * (kinfo_proc ki_start, microseconds) and kern.boottime; macOS
 * proc_pidinfo(PROC_PIDTBSDINFO) (pbi_start_tvsec/usec, microseconds)
 * and kern.bootsessionuuid; never ps(1).  A zombie ('Z') or a
 * dead task ('X') counts as exited.  Signals go through a pidfd
 * (pidfd_open(2), pidfd_send_signal(2)) when the kernel has one, so the
 * identity checked is the process signalled.
 *
 * Errors: -1 with errno; ESRCH means "no such process" (or "a different
 * process now has that pid" for the *_ident calls).
 */
#ifndef APPD_PROC_H
#define APPD_PROC_H

#include <stddef.h>
#include <sys/types.h>

enum proc_state { PROC_GONE = 0, PROC_ALIVE = 1, PROC_ZOMBIE = 2 };

struct proc_info {
	pid_t pid;
	pid_t ppid;
	pid_t pgid;
	pid_t sid;
	char state;                    /* R, S, D, T, Z, X, ... */
	unsigned long long start_ticks;
};

/* Read `pid`'s stat.  Returns PROC_ALIVE, PROC_ZOMBIE or PROC_GONE
 * (ENOENT is not an error), or -1/errno. */
int proc_read(pid_t pid, struct proc_info *out);

/* The kernel boot id (a UUID string, 36 chars).  0 or -1/errno. */
int proc_boot_id(char out[64]);

/* When the process `pi` (from proc_read) started, in wall-clock ms since
 * the epoch: Linux adds its start time in clock ticks to the boot time
 * (/proc/stat btime, proc(5)); FreeBSD and macOS record the wall time
 * itself.  0, or -1/errno. */
int proc_start_wall_ms(const struct proc_info *pi, long long *ms);

/* Resolved executable of `pid` (readlink /proc/PID/exe). */
int proc_exe(pid_t pid, char *out, size_t cap);

/* 1 when (pid, start_ticks) names a live, non-zombie process on this
 * boot (boot_id NULL skips the boot check), 0 when it does not, -1/errno
 * on an unexpected error. */
int proc_matches(pid_t pid, unsigned long long start_ticks, const char *boot_id);

/* Send `sig` to the process (pid, start_ticks) only if it is still that
 * process; `value` travels as si_value.sival_int (SI_QUEUE) so the
 * receiver can read it from its signalfd.  0, or -1 with ESRCH when the
 * process is gone or is another process. */
int proc_signal_ident(pid_t pid, unsigned long long start_ticks, int sig, int value);

/* kill(-pgid, sig); ESRCH (nobody left in the group) is success. */
int proc_signal_group(pid_t pgid, int sig);

/* A pidfd for `pid` (CLOEXEC), or -1 (ENOSYS where the kernel has none). */
int proc_pidfd_open(pid_t pid);

/* Up to `cap` pids whose parent is `ppid` (scans /proc).  Count or -1. */
int proc_children(pid_t ppid, pid_t *out, int cap);

/*
 * The process tree below `roots` (nroots pids): every live, non-zombie
 * process whose parent is a root or was itself found, or that is in
 * process group `pgid`, or in session `sid` (either <= 1 skips it).  The
 * roots themselves, pid 1 and the caller are never listed.  This is how
 * descendants are found where no subreaper collects orphans: a process
 * whose parent has exited is re-parented to init and is found only while
 * it keeps the group or the session -- one that double-forks and calls
 * setsid(2) or setpgid(2) escapes, and nothing on such a host can track it.
 * Linux: /proc/PID/stat (proc(5)); FreeBSD: sysctl KERN_PROC_PROC
 * (ki_ppid, ki_pgid, ki_sid); macOS: proc_listallpids + PROC_PIDTBSDINFO.
 * Up to `cap` entries into `out` (caller-owned); the count, or -1/errno.
 */
int proc_tree(const pid_t *roots, int nroots, pid_t pgid, pid_t sid,
	      struct proc_info *out, int cap);

/* Every pid on the system, up to `cap` (PROC_LIST_MAX is what proc_tree
 * reads): Linux readdir of /proc, FreeBSD sysctl KERN_PROC_PROC, macOS
 * proc_listallpids(3).  The count, or -1/errno. */
#define PROC_LIST_MAX 4096
int proc_list_all(pid_t *out, int cap);

/* For the OS files: proc_children by a scan of proc_list_all; 1 (errno
 * ENOSYS) when APPD_NO_SUBREAPER=1 asks proc_set_subreaper to fail; execv
 * of the file proc_self_exe names, else `fallback`. */
int proc_children_scan(pid_t ppid, pid_t *out, int cap);
int proc_subreaper_refused(void);
void proc_exec_path(char *const argv[], const char *fallback);

/* Make this process a child subreaper, so orphans of our descendants are
 * re-parented to us (Linux PR_SET_CHILD_SUBREAPER, prctl(2); FreeBSD
 * procctl(PROC_REAP_ACQUIRE)).  0, or -1/errno: EINVAL on kernels before
 * 3.4 and under qemu-user, ENOSYS on macOS, which has none, and whenever
 * APPD_NO_SUBREAPER=1 is set (the tests' switch for that path). */
int proc_set_subreaper(void);

/* Absolute path of the running executable. */
int proc_self_exe(char *out, size_t cap);

/* Name this process `name` (at most 15 bytes) where ps -o comm, pgrep
 * and top look (Linux: prctl(PR_SET_NAME)).  0 or -1/errno. */
int proc_set_name(const char *name);

/* execv the running image itself (Linux: /proc/self/exe, which stays
 * valid when the file was replaced), else `fallback` (may be NULL).
 * Returns only on failure, with errno. */
void proc_exec_self(char *const argv[], const char *fallback);

#endif
