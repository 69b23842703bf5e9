/* unmanaged.c -- see unmanaged.h. */
#include "core/unmanaged.h"
#include "core/base/fmt.h"
#include "core/base/fsutil.h"
#include "core/base/jsonw.h"
#include "platform/compat.h"
#include "platform/proc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void
format(struct unmanaged *u)
{
	struct jsonw w;

	jsonw_init(&w, u->json, sizeof u->json);
	jsonw_obj_begin(&w);
	jsonw_key(&w, "pid");
	if (u->pid > 0)
		jsonw_int(&w, u->pid);
	else
		jsonw_null(&w);
	jsonw_key(&w, "uid");
	if (u->uid >= 0)
		jsonw_int(&w, u->uid);
	else
		jsonw_null(&w);
	jsonw_key(&w, "exe");
	if (u->exe[0] != '\0')
		jsonw_str(&w, u->exe);
	else
		jsonw_null(&w);
	if (u->started_at > 0)
		jsonw_ktime(&w, "startedAt", u->started_at);
	jsonw_obj_end(&w);
	if (jsonw_finish(&w) < 0)
		str_copy(u->json, sizeof u->json, "{}");
}

int
unmanaged_identify(const char *sock, struct unmanaged *u, struct err *e)
{
	struct sockaddr_un sa;
	size_t n = strlen(sock);
	pid_t pid = 0;
	uid_t uid = 0;
	int fd, rc;

	memset(u, 0, sizeof *u);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (n >= sizeof sa.sun_path) {
		err_ctx_str(e, "socketPath", sock);
		return err_set(e, ERR_IO, "socket path too long: %s", sock);
	}
	memcpy(sa.sun_path, sock, n);
	fd = compat_socket(AF_UNIX, SOCK_STREAM, COMPAT_NONBLOCK);
	if (fd < 0)
		return err_sys(e, ERR_IO, "cannot create a socket");
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	/* EAGAIN: a full backlog still means a listener, but not who */
	if (rc < 0 && errno != EAGAIN) {
		int en = errno;
		close(fd);
		if (en == ENOENT || en == ECONNREFUSED || en == ENOTSOCK)
			return 0;
		errno = en;
		err_ctx_str(e, "socketPath", sock);
		return err_sys(e, ERR_IO, "cannot connect to %s", sock);
	}
	if (rc == 0 && compat_peer_cred(fd, &pid, &uid) == 0) {
		struct proc_info pi;

		u->pid = (long)pid;
		u->uid = (long)uid;
		if (pid > 0 && proc_read(pid, &pi) == PROC_ALIVE) {
			u->start_ticks = pi.start_ticks;
			if (proc_start_wall_ms(&pi, &u->started_at) < 0)
				u->started_at = 0;
			if (proc_exe(pid, u->exe, sizeof u->exe) < 0)
				u->exe[0] = '\0';
		} else {
			u->pid = 0;     /* gone already, or not ours to see */
		}
	} else {
		u->uid = -1;
	}
	close(fd);
	format(u);
	return 1;
}
