/* sockprep.c -- see sockprep.h. */
#include "core/sockprep.h"
#include "platform/compat.h"
#include "core/base/fsutil.h"
#include "core/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int
sock_path_check(const char *path, struct err *e)
{
	struct sockaddr_un sa;

	if (strlen(path) >= sizeof sa.sun_path) {
		err_ctx_str(e, "socketPath", path);
		return err_set(e, ERR_USAGE,
		    "socket path %s is %zu bytes, longer than the %zu a Unix socket "
		    "address holds; use a shorter APPD_HOME", path, strlen(path),
		    sizeof sa.sun_path - 1);
	}
	return 0;
}

int
sock_probe(const char *path)
{
	struct sockaddr_un sa;
	int fd, r, e;

	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (fd < 0)
		return -1;
	do
		r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (r < 0 && errno == EINTR);
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;
	if (e == ECONNREFUSED || e == ENOENT || e == ENOTDIR)
		return 0;
	errno = e;
	return -1;
}

/* A socket inode, or a symbolic link in our private run dir that is
 * dangling or points at a socket (codex 0.169.0 makes the listen path such
 * a link to a socket of its own elsewhere).  Only the path itself is ever
 * removed, never what a link points at. */
static int
removable(const char *path, const struct stat *lst)
{
	struct stat st;

	if (S_ISSOCK(lst->st_mode))
		return 1;
	if (!S_ISLNK(lst->st_mode))
		return 0;
	if (stat(path, &st) < 0)
		return errno == ENOENT;
	return S_ISSOCK(st.st_mode);
}

int
sock_prepare(const char *path, const char *lock_path, struct err *e)
{
	struct stat st;
	int lfd, p, r = 0;

	if (sock_path_check(path, e) < 0)
		return -1;
	lfd = lock_acquire(lock_path, 5000);
	if (lfd < 0) {
		err_ctx_str(e, "path", lock_path);
		if (errno == ETIMEDOUT)
			return err_set(e, ERR_BUSY, "timed out waiting for the startup lock %s", lock_path);
		return err_sys(e, ERR_IO, "failed to open startup lock %s", lock_path);
	}
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			r = err_sys(e, ERR_IO, "cannot inspect %s", path);
		goto out;
	}
	if (!removable(path, &st)) {
		err_ctx_str(e, "socketPath", path);
		r = err_set(e, ERR_SOCKET_IN_USE,
		    "control socket path exists and is not a socket: %s; it was left alone", path);
		goto out;
	}
	/* probe twice under the lock: a full backlog or a listener still
	 * binding can refuse once; two refusals with the lock held are not
	 * a race with another preparer */
	for (int k = 0; k < 2; k++) {
		p = sock_probe(path);
		if (p == 1) {
			err_ctx_str(e, "socketPath", path);
			r = err_set(e, ERR_SOCKET_IN_USE,
			    "app-server control socket is already in use at %s", path);
			goto out;
		}
		if (p < 0) {
			r = err_sys(e, ERR_IO, "cannot probe %s", path);
			goto out;
		}
	}
	if (unlink(path) < 0 && errno != ENOENT)
		r = err_sys(e, ERR_IO, "cannot remove stale socket %s", path);
out:
	lock_release(lfd);
	return r;
}

void
sock_cleanup(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (removable(path, &st) && sock_probe(path) == 0)
		unlink(path);
}

int
sock_listen(const char *path, const char *anchor, const char *lock_path, struct err *e)
{
	struct sockaddr_un sa;
	int fd, lfd;

	if (sock_prepare(path, lock_path, e) < 0 || sock_path_check(anchor, e) < 0)
		return -1;
	lfd = lock_acquire(lock_path, 5000);
	if (lfd < 0)
		return err_sys(e, ERR_BUSY, "failed to take the startup lock %s", lock_path);
	fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (fd < 0) {
		err_sys(e, ERR_IO, "cannot create the listening socket");
		goto fail;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, anchor, strlen(anchor));
	(void)unlink(anchor);                 /* ours: a private dir */
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		err_sys(e, ERR_IO, "cannot bind %s", anchor);
		goto fail;
	}
	if (chmod(anchor, 0600) < 0 || listen(fd, 128) < 0) {
		err_sys(e, ERR_IO, "cannot listen on %s", anchor);
		goto fail;
	}
	if (link(anchor, path) < 0) {
		err_sys(e, ERR_IO, "cannot link %s to %s", path, anchor);
		goto fail;
	}
	lock_release(lfd);
	return fd;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(anchor);
	}
	lock_release(lfd);
	return -1;
}

int
sock_repair(const char *path, const char *anchor)
{
	struct stat a, p;

	if (stat(anchor, &a) < 0)
		return -1;
	if (lstat(path, &p) == 0) {
		if (p.st_ino == a.st_ino && p.st_dev == a.st_dev)
			return 0;
		/* something else took the path: only a dead socket or link
		 * of ours is replaced */
		if (!removable(path, &p) || sock_probe(path) != 0) {
			errno = EEXIST;
			return -1;
		}
		if (unlink(path) < 0)
			return -1;
	} else if (errno != ENOENT) {
		return -1;
	}
	return link(anchor, path) < 0 ? -1 : 1;
}
