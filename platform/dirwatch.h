/*
 * dirwatch.h -- an fd that becomes readable when entries appear in,
 * move into or leave a directory (Linux: inotify(7) IN_CREATE|IN_MOVED_TO|
 * IN_DELETE; kqueue ports: EVFILT_VNODE NOTE_WRITE on the directory fd).
 * dirwatch_linux.c, dirwatch_kqueue.c.  Used to wake waiters when status.json is replaced or a socket appears,
 * instead of polling.
 */
#ifndef APPD_DIRWATCH_H
#define APPD_DIRWATCH_H

/* Non-blocking, CLOEXEC fd, or -1/errno. */
int dirwatch_open(const char *dir);
/* Consume pending notifications (call from the read callback). */
void dirwatch_drain(int fd);
/* Close the watch (and, on kqueue, the directory it holds open). */
void dirwatch_close(int fd);

#endif
