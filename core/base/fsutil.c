/* fsutil.c -- see fsutil.h. */
#include "core/base/fsutil.h"
#include "core/base/scan.h"
#include "core/base/fmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

ssize_t
fd_read(int fd, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

int
fd_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
fd_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

int
fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

int
fd_above_stdio(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -1;
	close(fd);
	return nfd;
}

int
fd_std_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int got;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* the lowest free number: this one; not CLOEXEC, on purpose:
		 * standard fds are what everything we run inherits */
		got = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (got < 0)
			return -1;
		if (got != fd) {
			close(got);
			errno = EBADF;
			return -1;
		}
	}
	return 0;
}

int
fs_open_regular(const char *path, int flags, mode_t mode, struct stat *st)
{
	int fd;

	do
		fd = open(path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, mode);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) == 0 && S_ISREG(st->st_mode))
		return fd;
	{
		int en = S_ISREG(st->st_mode) ? errno : EINVAL;
		close(fd);
		errno = en;
		return -1;
	}
}

int
fs_read_fail(struct err *e, enum err_code code, const char *what, const char *path)
{
	err_ctx_str(e, "path", path);
	if (errno == EINVAL)
		return err_set(e, code, "%s %s is not a regular file (a FIFO, socket, device or "
		    "directory is never read); it was left as it is", what, path);
	return err_sys(e, code, "failed to read %s %s", what, path);
}

int
fs_read_file(const char *path, char *buf, size_t cap, size_t *len)
{
	struct stat st;
	int fd = fs_open_regular(path, O_RDONLY, 0, &st);
	size_t got = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r;

		if (got + 1 >= cap) {
			char extra;
			/* full: is there more? */
			r = fd_read(fd, &extra, 1);
			close(fd);
			if (r > 0) {
				errno = EFBIG;
				return -1;
			}
			break;
		}
		r = fd_read(fd, buf + got, cap - 1 - got);
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0) {
			close(fd);
			break;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (len)
		*len = got;
	return 0;
}

int
fs_sync_parent(const char *path)
{
	char dir[FS_PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, r;

	if (slash == NULL)
		return fs_sync_parent("./x");
	if ((size_t)(slash - path) >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (slash == path) {
		dir[0] = '/';
		dir[1] = '\0';
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

static int
write_replace(const char *path, const void *data, size_t len, mode_t mode, int durable)
{
	char tmp[FS_PATH_MAX];
	int fd, e;
	int n = fmt_n(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());

	if (n < 0 || (size_t)n >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	if (fd_write_all(fd, data, len) < 0 || (durable && fsync(fd) < 0))
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	/* the rename is durable once the directory is synced; a failure
	 * here leaves a complete file in place, so it is not an error */
	if (durable)
		(void)fs_sync_parent(path);
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e;
	return -1;
}

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, 1);
}

int
fs_replace(const char *path, const void *data, size_t len, mode_t mode)
{
	return write_replace(path, data, len, mode, 0);
}

int
fs_check_private_dir(const char *path, int missing_ok, struct err *e)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT && missing_ok)
			return 1;
		return err_sys(e, ERR_IO, "cannot inspect %s", path);
	}
	if (!S_ISDIR(st.st_mode)) {
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_UNSAFE_HOME, "%s exists and is not a directory", path);
	}
	if (st.st_uid != geteuid()) {
		err_ctx_str(e, "path", path);
		err_ctx_num(e, "owner", (long long)st.st_uid);
		return err_set(e, ERR_UNSAFE_HOME,
		    "refusing %s: owned by uid %u, not by uid %u", path,
		    (unsigned)st.st_uid, (unsigned)geteuid());
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		err_ctx_str(e, "path", path);
		return err_set(e, ERR_UNSAFE_HOME,
		    "refusing %s: writable by group or other (mode %04o); "
		    "fix it with chmod go-w", path, (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

int
fs_private_dir(const char *path, struct err *e)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return err_sys(e, ERR_IO, "cannot create directory %s", path);
	return fs_check_private_dir(path, 0, e);
}

int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void
iso8601_ms(int64_t ms, char out[32])
{
	int64_t s, y;
	unsigned mo, d, sod;
	char tmp[96];

	if (ms < 0)
		ms = 0;
	s = ms / 1000;
	sod = (unsigned)(s % 86400);
	civil_from_days(s / 86400, &y, &mo, &d);
	fmt_n(tmp, sizeof tmp, "%04d-%02u-%02uT%02u:%02u:%02u.%03dZ", (int)y, mo, d,
	    sod / 3600, sod / 60 % 60, sod % 60, (int)(ms % 1000));
	memcpy(out, tmp, 31);
	out[31] = '\0';
}

int64_t
iso8601_parse(const char *s)
{
	int y, mo, d, h, mi, sec, frac = 0;

	if (scan_digits(&s, 4, &y) < 0 || scan_lit(&s, "-") < 0 || scan_digits(&s, 2, &mo) < 0 ||
	    scan_lit(&s, "-") < 0 || scan_digits(&s, 2, &d) < 0 || scan_lit(&s, "T") < 0 ||
	    scan_digits(&s, 2, &h) < 0 || scan_lit(&s, ":") < 0 || scan_digits(&s, 2, &mi) < 0 ||
	    scan_lit(&s, ":") < 0 || scan_digits(&s, 2, &sec) < 0)
		return -1;
	if (*s == '.') {
		int digits = 0;
		s++;
		while (*s >= '0' && *s <= '9') {
			if (digits < 3) {
				frac = frac * 10 + (*s - '0');
				digits++;
			}
			s++;
		}
		while (digits++ < 3)
			frac *= 10;
	}
	if (*s != 'Z' || s[1] != '\0')
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	return (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec) *
	    1000 + frac;
}

int
str_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (cap == 0 || n >= cap) {
		if (cap)
			dst[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int
str_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_v(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
fs_remove_tree(int dfd, const char *name, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if ((errno != EISDIR && errno != EPERM) || depth <= 0)
		return -1;
	do
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		int en = errno;
		close(fd);
		errno = en;
		return -1;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)fs_remove_tree(fd, de->d_name, depth - 1);
	closedir(d);
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT ? -1 : 0;
}
