/*
 * dirwatch_kqueue.c -- see dirwatch.h.  FreeBSD and macOS: a kqueue of its
 * own holding EVFILT_VNODE NOTE_WRITE|NOTE_EXTEND on the directory (an
 * entry created, renamed into or removed from it writes the directory);
 * that kqueue is the fd handed out, readable while an event is pending
 * (a kqueue can itself be watched with EVFILT_READ, kqueue(2)).  The
 * directory must stay open for its knote to live, so the pair is kept
 * here until dirwatch_close.  O_EVTONLY on macOS: the open does not keep
 * the volume from being unmounted.
 */
#include "platform/dirwatch.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef O_EVTONLY
#define O_EVTONLY O_RDONLY
#endif
#ifndef O_DIRECTORY
#define O_DIRECTORY 0
#endif

#define DIRWATCH_MAX 8          /* a process watches one or two at a time */

static struct { int kq, dir; } open_watches[DIRWATCH_MAX] = {
	{ -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
	{ -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 },
};

int
dirwatch_open(const char *dir)
{
	struct kevent ch;
	int slot = -1, kq = -1, d = -1, e;

	for (int i = 0; i < DIRWATCH_MAX && slot < 0; i++)
		if (open_watches[i].kq < 0)
			slot = i;
	if (slot < 0) {
		errno = EMFILE;
		return -1;
	}
	d = open(dir, O_EVTONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return -1;
	kq = kqueue();
	if (kq < 0 || fcntl(kq, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(kq, F_SETFL, fcntl(kq, F_GETFL) | O_NONBLOCK) < 0)
		goto fail;
	EV_SET(&ch, (uintptr_t)d, EVFILT_VNODE, EV_ADD | EV_CLEAR, NOTE_WRITE | NOTE_EXTEND, 0,
	    NULL);
	if (kevent(kq, &ch, 1, NULL, 0, NULL) < 0)
		goto fail;
	open_watches[slot].kq = kq;
	open_watches[slot].dir = d;
	return kq;
fail:
	e = errno;
	if (kq >= 0)
		close(kq);
	close(d);
	errno = e;
	return -1;
}

void
dirwatch_drain(int fd)
{
	static const struct timespec zero = { 0, 0 };
	struct kevent ev[4];

	while (kevent(fd, NULL, 0, ev, 4, &zero) > 0 || errno == EINTR)
		errno = 0;
}

void
dirwatch_close(int fd)
{
	for (int i = 0; i < DIRWATCH_MAX; i++)
		if (open_watches[i].kq == fd) {
			close(open_watches[i].dir);
			open_watches[i].kq = open_watches[i].dir = -1;
		}
	if (fd >= 0)
		close(fd);
}
