/* dirwatch_linux.c -- see dirwatch.h. */
#include "platform/dirwatch.h"

#include <errno.h>
#include <limits.h>
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
	/* room for one event with the longest name (inotify(7)); the loop
	 * takes the rest */
	char buf[sizeof(struct inotify_event) + NAME_MAX + 1 + 256];

	while (read(fd, buf, sizeof buf) > 0 || errno == EINTR)
		;
}
