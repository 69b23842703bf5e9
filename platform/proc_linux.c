/* proc_linux.c -- see proc.h.  Linux: /proc, pidfd, prctl. */
#include "platform/proc.h"
#include "platform/compat.h"
#include "core/base/fmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static int
read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, cap - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

int
proc_read(pid_t pid, struct proc_info *out)
{
	char path[64], buf[1024], *p, *end;
	unsigned long long v[20];
	int k;

	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	/* our own through the main thread's file: qemu-user answers
	 * /proc/self/stat and /proc/<own pid>/stat itself, with a start time
	 * one tick off the kernel's -- what every other process reads for
	 * us -- and the task file is the kernel's, with the same fields */
	if (pid == getpid())
		fmt_n(path, sizeof path, "/proc/%ld/task/%ld/stat", (long)pid, (long)pid);
	else
		fmt_n(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if (read_small(path, buf, sizeof buf) < 0)
		return errno == ENOENT || errno == ESRCH ? PROC_GONE : -1;
	/* comm may hold spaces and parentheses: the state follows the last ')' */
	p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0') {
		errno = EIO;
		return -1;
	}
	out->pid = pid;
	out->state = p[2];
	p += 3;
	/* fields 4..22 */
	for (k = 0; k < 19; k++) {
		while (*p == ' ')
			p++;
		errno = 0;
		v[k] = strtoull(p, &end, 10);
		if (end == p) {
			/* ppid etc. can be negative only for tty fields */
			long long sv = strtoll(p, &end, 10);
			if (end == p) {
				errno = EIO;
				return -1;
			}
			v[k] = (unsigned long long)sv;
		}
		p = end;
	}
	out->ppid = (pid_t)v[0];
	out->pgid = (pid_t)v[1];
	out->sid = (pid_t)v[2];
	out->start_ticks = v[18];
	if (out->state == 'Z' || out->state == 'X')
		return PROC_ZOMBIE;
	return PROC_ALIVE;
}

int
proc_boot_id(char out[64])
{
	static char cached[64] COMPAT_RESIDENT;
	int n;

	if (cached[0] == '\0') {
		n = read_small("/proc/sys/kernel/random/boot_id", cached, sizeof cached);
		if (n < 0)
			return -1;
		while (n > 0 && (cached[n - 1] == '\n' || cached[n - 1] == ' '))
			cached[--n] = '\0';
	}
	memcpy(out, cached, 64);
	return 0;
}

/* The boot time from /proc/stat's btime line, which follows the "intr"
 * line (thousands of numbers on a big host): read in chunks. */
static int
boot_time_s(unsigned long long *out)
{
	static const char key[] = "\nbtime ";
	char buf[4096 + sizeof key];
	size_t keep = 0;
	int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + keep, sizeof buf - 1 - keep);
		char *b;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf[keep + (size_t)n] = '\0';
		b = strstr(buf, key);
		if (b != NULL && strchr(b + 7, '\n') != NULL) {
			unsigned long long v = 0;
			for (b += 7; *b >= '0' && *b <= '9'; b++)
				v = v * 10 + (unsigned long long)(*b - '0');
			close(fd);
			*out = v;
			return 0;
		}
		keep += (size_t)n;
		if (b != NULL) {
			/* the line is cut: keep it whole for the next read */
			size_t off = (size_t)(b - buf);
			memmove(buf, b, keep - off);
			keep -= off;
		} else if (keep > sizeof key) {
			memmove(buf, buf + keep - (sizeof key - 1), sizeof key - 1);
			keep = sizeof key - 1;
		}
	}
	close(fd);
	errno = EIO;
	return -1;
}

int
proc_start_wall_ms(const struct proc_info *pi, long long *ms)
{
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long btime;

	if (hz <= 0 || boot_time_s(&btime) < 0)
		return -1;
	*ms = (long long)(btime * 1000ull + pi->start_ticks * 1000ull / (unsigned long long)hz);
	return 0;
}

int
proc_exe(pid_t pid, char *out, size_t cap)
{
	char path[64];
	ssize_t n;

	fmt_n(path, sizeof path, "/proc/%ld/exe", (long)pid);
	n = readlink(path, out, cap - 1);
	if (n < 0)
		return -1;
	out[n] = '\0';
	return 0;
}

int
proc_self_exe(char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);

	if (n < 0)
		return -1;
	out[n] = '\0';
	return 0;
}

int
proc_pidfd_open(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, (long)pid, 0L);

	return fd < 0 ? -1 : (int)fd;
}

int
proc_signal_ident(pid_t pid, unsigned long long start_ticks, int sig, int value)
{
	siginfo_t si;
	int pfd, m, r, e;

	pfd = proc_pidfd_open(pid);
	if (pfd < 0 && errno != ENOSYS)
		return -1;      /* ESRCH: gone */
	/* with the pidfd held, the identity we check is the one we signal */
	m = proc_matches(pid, start_ticks, NULL);
	if (m <= 0) {
		if (pfd >= 0)
			close(pfd);
		if (m == 0)
			errno = ESRCH;
		return -1;
	}
	memset(&si, 0, sizeof si);
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (pfd >= 0) {
		/* no siginfo unless there is a value to carry: qemu-user on MIPS
		 * refuses one for SIGUSR1/SIGUSR2 (it does not translate si_signo) */
		r = (int)syscall(SYS_pidfd_send_signal, pfd, sig, value ? &si : NULL, 0);
		e = errno;
		close(pfd);
		errno = e;
		return r < 0 ? -1 : 0;
	}
	return sigqueue(pid, sig, si.si_value);
}

/* Our own children from /proc/PID/task/PID/children (Linux 3.5+,
 * CONFIG_PROC_CHILDREN): one small read instead of a scan of /proc.
 * A single-threaded process's children all hang off its main thread.
 * -1 when the file is not there. */
static int
own_children(pid_t self, pid_t *out, int cap)
{
	char path[64], buf[4096], *p, *end;
	int n = 0, fd;
	ssize_t r;

	fmt_n(path, sizeof path, "/proc/%ld/task/%ld/children", (long)self, (long)self);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	do
		r = read(fd, buf, sizeof buf - 1);
	while (r < 0 && errno == EINTR);
	close(fd);
	if (r < 0 || r == (ssize_t)sizeof buf - 1)
		return -1;      /* unreadable or possibly cut: scan instead */
	buf[r] = '\0';
	for (p = buf; n < cap; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		out[n++] = (pid_t)v;
	}
	return n;
}

int
proc_children(pid_t ppid, pid_t *out, int cap)
{
	int fast;

	if (ppid == getpid() && (fast = own_children(ppid, out, cap)) >= 0)
		return fast;
	return proc_children_scan(ppid, out, cap);
}

int
proc_list_all(pid_t *out, int cap)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL && n < cap) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end == '\0' && pid > 0)
			out[n++] = (pid_t)pid;
	}
	closedir(d);
	return n;
}

int
proc_set_subreaper(void)
{
	/* tests force the path of kernels and sandboxes without one */
	if (proc_subreaper_refused())
		return -1;
	return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int
proc_set_name(const char *name)
{
	return prctl(PR_SET_NAME, name, 0, 0, 0);
}

void
proc_exec_self(char *const argv[], const char *fallback)
{
	/* our own image even when the file was replaced meanwhile (a
	 * rebuild, an scp of a newer appd) */
	execv("/proc/self/exe", argv);
	if (fallback != NULL)
		execv(fallback, argv);
}
