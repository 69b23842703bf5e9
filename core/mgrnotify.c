/* mgrnotify.c -- see mgrnotify.h. */
#include "core/mgrnotify.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "platform/compat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
mgr_init(struct mgr *m, int s6_fd)
{
	const char *ns = getenv("NOTIFY_SOCKET");
	const char *wu = getenv("WATCHDOG_USEC");
	const char *wp = getenv("WATCHDOG_PID");
	int rc = 0;

	memset(m, 0, sizeof *m);
	m->s6_fd = s6_fd;
	m->fd = -1;
	if (wu != NULL && (wp == NULL || atol(wp) == (long)getpid())) {
		unsigned long long us = strtoull(wu, NULL, 10);
		m->watchdog_ms = us / 2000;
		if (us > 0 && m->watchdog_ms == 0)
			m->watchdog_ms = 1;
	}
	if (ns != NULL && (ns[0] == '/' || ns[0] == '@') &&
	    str_copy(m->path, sizeof m->path, ns) == 0) {
		m->fd = compat_socket(AF_UNIX, SOCK_DGRAM, COMPAT_NONBLOCK);
		if (m->fd < 0) {
			m->path[0] = '\0';
			rc = -1;
		}
	}
	if (m->fd < 0)
		m->watchdog_ms = 0;
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	return rc;
}

static void
send_msg(struct mgr *m, const char *text)
{
	struct sockaddr_un sa;
	size_t n = strlen(m->path);
	socklen_t len;

	if (m->fd < 0)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, m->path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';          /* the abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (m->path[0] == '/'));
	while (sendto(m->fd, text, strlen(text), COMPAT_NOSIGNAL, (struct sockaddr *)&sa,
	    len) < 0 && errno == EINTR)
		;
}

void
mgr_update(struct mgr *m, const struct sup_status *st)
{
	char msg[512];

	if (!m->ready_sent && st->ready) {
		m->ready_sent = 1;
		if (m->s6_fd >= 0) {
			(void)fd_write_all(m->s6_fd, "\n", 1);
			close(m->s6_fd);
			m->s6_fd = -1;
		}
		fmt_n(msg, sizeof msg, "READY=1\nSTATUS=%s: %.120s\nMAINPID=%ld", st->state,
		    st->message, (long)getpid());
		send_msg(m, msg);
		fmt_n(m->last_status, sizeof m->last_status, "%s: %.120s", st->state, st->message);
		return;
	}
	if (!m->stopping_sent && (strcmp(st->state, "stopping") == 0 ||
	    strcmp(st->state, "stopped") == 0)) {
		m->stopping_sent = 1;
		send_msg(m, "STOPPING=1");
	}
	fmt_n(msg, sizeof msg, "%s: %.120s", st->state, st->message);
	if (strcmp(msg, m->last_status) != 0) {
		char line[200];
		str_copy(m->last_status, sizeof m->last_status, msg);
		fmt_n(line, sizeof line, "STATUS=%s", m->last_status);
		send_msg(m, line);
	}
}

void
mgr_watchdog(struct mgr *m)
{
	send_msg(m, "WATCHDOG=1");
}
