/* logcap.c -- see logcap.h. */
#include "core/logcap.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
reopen(struct logcap *l, int fresh)
{
	struct stat st;
	char rotated[LOGCAP_PATH_MAX];

	if (fresh && (fmt_n(rotated, sizeof rotated, "%s.1", l->path) >= (int)sizeof rotated ||
	    (rename(l->path, rotated) < 0 && errno != ENOENT)))
		return -1;
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (l->fd < 0)
		return -1;
	l->size = fstat(l->fd, &st) == 0 ? (long long)st.st_size : 0;
	return 0;
}

int
logcap_open(struct logcap *l, const char *path, long long max, int fresh)
{
	l->fd = -1;
	l->max = max;
	l->path = path;
	if (strlen(path) + 3 > LOGCAP_PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return reopen(l, fresh);
}

int
logcap_write(struct logcap *l, const void *buf, size_t n)
{
	if (l->fd >= 0 && l->size > 0 && l->size + (long long)n > l->max) {
		close(l->fd);
		l->fd = -1;
		if (reopen(l, 1) < 0)
			return -1;
	}
	if (l->fd < 0 && reopen(l, 0) < 0)
		return -1;
	if (fd_write_all(l->fd, buf, n) < 0)
		return -1;
	l->size += (long long)n;
	return 0;
}

void
logcap_close(struct logcap *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

int
log_tail(const char *path, size_t max, char *out, size_t cap)
{
	struct stat st;
	off_t from = 0;
	size_t got = 0;
	int fd;

	if (cap == 0) {
		errno = EINVAL;
		return -1;
	}
	out[0] = '\0';
	if (max > cap - 1)
		max = cap - 1;
	fd = fs_open_regular(path, O_RDONLY, 0, &st);
	if (fd < 0)
		return -1;
	if (st.st_size > (off_t)max)
		from = st.st_size - (off_t)max;
	while (got < max) {
		ssize_t r = pread(fd, out + got, max - got, from + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	out[got] = '\0';
	if (from > 0) {
		/* the cut fell inside a line unless the byte before it is '\n' */
		char before = 0;
		int fd2 = open(path, O_RDONLY | O_CLOEXEC);
		if (fd2 >= 0) {
			if (pread(fd2, &before, 1, from - 1) != 1)
				before = 0;
			close(fd2);
		}
		if (before != '\n') {
			char *nl = memchr(out, '\n', got);
			size_t skip = nl ? (size_t)(nl - out) + 1 : got;
			memmove(out, out + skip, got - skip + 1);
		}
	}
	return 0;
}
