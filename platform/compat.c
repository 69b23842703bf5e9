#define __STDC_WANT_LIB_EXT1__ 1     /* memset_s on macOS; before any header */
/* compat.c -- see compat.h.  The only file with OS conditionals for the
 * calls it wraps. */
#include "platform/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif
#if defined(__linux__)
#include <sys/socket.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__)
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/ucred.h>
#include <sys/un.h>
#endif

#if !defined(__linux__) && !defined(__FreeBSD__)
static int
set_fd_flags(int fd, int flags)
{
	int fl;

	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	if (flags & COMPAT_NONBLOCK) {
		fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return -1;
	}
	return 0;
}

static int
no_sigpipe(int fd)
{
#if defined(SO_NOSIGPIPE)
	int one = 1;

	return setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
	(void)fd;
	return 0;
#endif
}
#endif

int
compat_pipe(int p[2], int flags)
{
#if defined(__linux__) || defined(__FreeBSD__)
	return pipe2(p, O_CLOEXEC | ((flags & COMPAT_NONBLOCK) ? O_NONBLOCK : 0));
#else
	if (pipe(p) < 0)
		return -1;
	if (set_fd_flags(p[0], flags) < 0 || set_fd_flags(p[1], flags) < 0) {
		int en = errno;
		close(p[0]);
		close(p[1]);
		errno = en;
		return -1;
	}
	return 0;
#endif
}

int
compat_socket(int domain, int type, int flags)
{
#if defined(__linux__) || defined(__FreeBSD__)
	return socket(domain, type | SOCK_CLOEXEC | ((flags & COMPAT_NONBLOCK) ? SOCK_NONBLOCK : 0), 0);
#else
	int fd = socket(domain, type, 0);

	if (fd >= 0 && (set_fd_flags(fd, flags) < 0 || no_sigpipe(fd) < 0)) {
		int en = errno;
		close(fd);
		errno = en;
		return -1;
	}
	return fd;
#endif
}

int
compat_accept(int fd, int flags)
{
	int c;

	do {
#if defined(__linux__) || defined(__FreeBSD__)
		c = accept4(fd, NULL, NULL, SOCK_CLOEXEC |
		    ((flags & COMPAT_NONBLOCK) ? SOCK_NONBLOCK : 0));
#else
		c = accept(fd, NULL, NULL);
#endif
	} while (c < 0 && errno == EINTR);
#if !defined(__linux__) && !defined(__FreeBSD__)
	if (c >= 0 && (set_fd_flags(c, flags) < 0 || no_sigpipe(c) < 0)) {
		int en = errno;
		close(c);
		errno = en;
		return -1;
	}
#endif
	return c;
}

void
compat_wipe(void *p, size_t n)
{
#if defined(__APPLE__)
	(void)memset_s(p, n, 0, n);
#else
	explicit_bzero(p, n);
#endif
}

int64_t
compat_mtime_ns(const struct stat *st)
{
#if defined(__APPLE__)
	return (int64_t)st->st_mtimespec.tv_sec * 1000000000 + st->st_mtimespec.tv_nsec;
#else
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
#endif
}

int
compat_has_splice(void)
{
#if defined(__linux__)
	return 1;
#else
	return 0;
#endif
}

ssize_t
compat_splice(int in, int out, size_t max)
{
#if defined(__linux__)
	ssize_t n;

	do
		n = splice(in, NULL, out, NULL, max, SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	return n;
#else
	(void)in; (void)out; (void)max;
	errno = ENOSYS;
	return -1;
#endif
}

int
compat_peer_cred(int fd, pid_t *pid, uid_t *uid)
{
#if defined(__linux__)
	struct ucred cr;
	socklen_t len = sizeof cr;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -1;
	*pid = cr.pid;
	*uid = cr.uid;
	return 0;
#elif defined(__APPLE__)
	gid_t gid;
	pid_t p = 0;
	socklen_t len = sizeof p;

	if (getpeereid(fd, uid, &gid) < 0)
		return -1;
	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &p, &len) < 0)
		p = 0;
	*pid = p;
	return 0;
#elif defined(__FreeBSD__) && defined(LOCAL_PEERCRED) && __FreeBSD_version >= 1300000
	struct xucred xu;
	socklen_t len = sizeof xu;

	if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, &xu, &len) < 0)
		return -1;
	*uid = xu.cr_uid;
	*pid = xu.cr_pid;
	return 0;
#else
	gid_t gid;

	*pid = 0;
	return getpeereid(fd, uid, &gid);
#endif
}

int
compat_peer_uid(int fd, uid_t *uid)
{
	pid_t pid;

	return compat_peer_cred(fd, &pid, uid);
}

void *
compat_map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void
compat_unmap(void *p, size_t n)
{
	int en = errno;

	if (p != NULL)
		(void)munmap(p, n);
	errno = en;             /* callers report the failure before this */
}

/* How far below the caller the stack is released: more than any frame
 * chain of appd's (the deepest, a stop that walks /proc, is some 100 KB). */
#define STACK_RELEASE_SPAN (1024 * 1024)

void
compat_stack_release(void)
{
	volatile char here = 0;
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	/* what lies within 1 KB below this frame stays: madvise's own
	 * frames (a few dozen bytes) are there */
	uintptr_t top = ((uintptr_t)&here - 1024) & ~(pg - 1);
	int en = errno;

	if (top <= STACK_RELEASE_SPAN)
		return;
#if defined(__linux__)
	/* MADV_DONTNEED frees at once (the pages read as zero when touched
	 * again); the part of the span below the stack's mapping is not
	 * mapped, which gives ENOMEM after the mapped part was done
	 * (madvise(2)) */
	(void)madvise((void *)(top - STACK_RELEASE_SPAN), STACK_RELEASE_SPAN, MADV_DONTNEED);
#elif defined(MADV_FREE)
	(void)madvise((void *)(top - STACK_RELEASE_SPAN), STACK_RELEASE_SPAN, MADV_FREE);
#endif
	errno = en;
	(void)here;
}

void
compat_cloexec_from(int low)
{
	struct rlimit rl;
	long top = 1 << 20;

#if defined(__linux__)
#if !defined(SYS_close_range)
#define SYS_close_range 436
#endif
	/* CLOSE_RANGE_CLOEXEC is 4 (linux/close_range.h) */
	if (syscall(SYS_close_range, (unsigned)low, ~0u, 4u) == 0)
		return;
	{
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;

		if (d != NULL) {
			int self = dirfd(d);
			while ((de = readdir(d)) != NULL) {
				long fd = strtol(de->d_name, NULL, 10);
				if (de->d_name[0] >= '0' && de->d_name[0] <= '9' &&
				    fd >= low && fd != self)
					(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
			}
			closedir(d);
			return;
		}
	}
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (long)rl.rlim_cur < top)
		top = (long)rl.rlim_cur;
	for (long fd = low; fd < top; fd++)
		(void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
}
