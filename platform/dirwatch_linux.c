/* dirwatch_linux.c -- see dirwatch.h. */
#include "platform/dirwatch.h"

#include <errno.h>
#include <sys/inotify.h>
#include <unistd.h>

int
dirwatch_open(const char *dir)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, dir, IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_ONLYDIR) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void
dirwatch_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

void
dirwatch_drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof buf) > 0 || errno == EINTR)
		;
}
