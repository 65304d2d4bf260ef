/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keeper of a memory checkpoint: a process the holder node's daemon
 * forks for each checkpoint it keeps, which holds the process image in its
 * own memory (an engine memory buffer), so that the daemon's memory and
 * event loop stay small whatever it keeps. The image comes from the export
 * worker of the node where the process runs and goes, for each restart, to
 * the import worker of the node it restarts on, over the same direct data
 * channel as a migration (msg_chan_*: one-time key, mutual handshake, sealed
 * by a pump process unless the cluster runs with "encrypt no"):
 *
 *   export worker (S) ==image==> keeper (H) ==image==> import worker (T)
 *
 *   STORING --image complete, verified--> KEPT --KEEPER_SEND--> SENDING
 *      |                                   ^                       |
 *      |                                   +---- sent, or failed --+
 *      +-- connection broke, larger than its limit, damaged: report, exit
 *   KEPT --command pipe closed (drop, daemon gone)--> exit
 *
 * 1. The image is reported kept only after img_verify() passed on all of
 *    it: a truncated or damaged stream never becomes a checkpoint.
 * 2. The keeper never holds more than its limit: past it the store fails.
 * 3. A failed send leaves the image as it was: only the restart fails.
 *
 * It dies with its daemon (PR_SET_PDEATHSIG): a daemon that starts again
 * does not know what its predecessor kept, so nothing may stay behind.
 *
 *   transition              function
 *   STORING -> KEPT         store()
 *   KEPT -> SENDING -> KEPT send()
 *   KEPT -> exit            keeper_main()
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_PREFIX "keeper"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost.h"
#include "image/image.h"
#include "io/io.h"
#include "node/node-int.h"
#include "base/banned.h"

/* A keeper waits this long for its peer to connect or answer. */
#define CHAN_TIMEOUT_MS 10000
#define CHUNK (1u << 20)

struct keeper_run {
	const struct keeper_job *job;
	int cmd_fd;
};

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

static void done_error(int fd, int err, const char *fmt, ...) _printf_(3, 4);
static void done_error(int fd, int err, const char *fmt, ...)
{
	struct worker_report rep = { .kind = WORKER_DONE, .err = err < 0 ? err : -EIO };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rep.msg, sizeof(rep.msg), fmt, ap);
	va_end(ap);
	worker_report_send(fd, &rep);
}

/* Read the image from data_fd into b until end of file, at most limit bytes. */
static int receive(int data_fd, uint64_t limit, struct ghost_buffer *b, uint8_t *chunk)
{
	for (;;) {
		ssize_t n;
		int r;

		do
			n = read(data_fd, chunk, CHUNK);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		if (n == 0)
			return 0;
		if (ghost_buffer_size(b) + (uint64_t)n > limit)
			return -EFBIG;
		r = ghost_buffer_write(b, chunk, (size_t)n);
		if (r < 0)
			return r;
	}
}

/* STORING: take the image; exits on failure. */
static void store(const struct keeper_job *j, int report_fd, struct ghost_buffer *b,
		  uint8_t *chunk)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	char why[sizeof(rep.msg)];
	pid_t pump = -1;
	int data_fd, r, rp;

	r = worker_accept_stream(j->listen_fd, j->key, j->encrypt, j->source, &data_fd, &pump,
				 why, sizeof(why));
	safe_close(j->listen_fd);
	if (r < 0)
		worker_fail(report_fd, &rep, r, "%s", why);
	r = receive(data_fd, j->limit, b, chunk);
	safe_close(data_fd);
	if (r == -EFBIG) {
		/* The pump sees its reader gone; its verdict does not matter. */
		(void)worker_pump_wait(pump);
		worker_fail(report_fd, &rep, r,
			    "the image is larger than the %.1f MiB of checkpoint memory node %u "
			    "set aside for it",
			    mib(j->limit), j->self);
	}
	rp = worker_pump_wait(pump);
	if (rp == -EBADMSG)
		worker_fail(report_fd, &rep, rp,
			    "the stream from node %u failed its integrity check", j->source);
	if (r < 0 || rp < 0)
		worker_fail(report_fd, &rep, r < 0 ? r : rp,
			    "the transfer connection from node %u broke: %s", j->source,
			    strerror(-(r < 0 ? r : rp)));
	/* A stream cut short at a record boundary, or damaged without a seal,
	 * must not become a checkpoint. */
	r = img_verify(ghost_buffer_data(b), ghost_buffer_size(b), IMG_READ_ANY_KERNEL);
	if (r < 0)
		worker_fail(report_fd, &rep, r, "the image from node %u is damaged: %s", j->source,
			    ghost_strerror(r));
	rep.stats.image_bytes = ghost_buffer_size(b);
	worker_report_send(report_fd, &rep);
}

/* SENDING: stream the image to an import worker; reports, never exits. */
static void send_image(const struct keeper_cmd *c, int report_fd, const struct ghost_buffer *b)
{
	struct worker_report rep = { .kind = WORKER_DONE };
	struct msg_chan_session cs = MSG_CHAN_SESSION_INIT;
	struct worker_progress wp = { .fd = report_fd };
	const uint8_t *data = ghost_buffer_data(b);
	size_t size = ghost_buffer_size(b), off = 0;
	pid_t pump = -1;
	int data_fd, r = 0, rp;

	r = msg_chan_connect(c->host, c->port, c->key, CHAN_TIMEOUT_MS, &cs);
	if (r < 0) {
		done_error(report_fd, r, "cannot open the transfer connection to node %u: %s",
			   c->dest, strerror(-r));
		return;
	}
	worker_set_stall_timeouts(cs.fd);
	data_fd = cs.fd;
	if (c->encrypt) {
		r = worker_pump_start(&cs, true, &data_fd, &pump);
		if (r < 0) {
			msg_chan_session_release(&cs);
			done_error(report_fd, r, "cannot start the sealing pump: %s", strerror(-r));
			return;
		}
	} else {
		cs.fd = -1;
	}
	while (r >= 0 && off < size) {
		size_t n = MIN((size_t)CHUNK, size - off);

		r = write_full(data_fd, data + off, n);
		if (r >= 0) {
			off += n;
			worker_progress(&wp, off, size);
		}
	}
	if (r == -EAGAIN || r == -EWOULDBLOCK)
		r = -ETIMEDOUT;
	safe_close(data_fd);
	msg_chan_session_release(&cs);
	rp = worker_pump_wait(pump);
	if (r >= 0 && rp < 0)
		r = rp;
	if (r < 0) {
		done_error(report_fd, r, "the transfer connection to node %u broke: %s", c->dest,
			   strerror(-r));
		return;
	}
	rep.stats.image_bytes = size;
	worker_report_send(report_fd, &rep);
}

static _Noreturn void keeper_main(const struct keeper_run *run, int report_fd)
{
	const struct keeper_job *j = run->job;
	struct ghost_buffer *b = NULL;
	struct worker_report rep = { .kind = WORKER_DONE };
	uint8_t *chunk;
	int r;

	(void)prctl(PR_SET_NAME, "ghost-keeper");
	chunk = malloc(CHUNK);
	r = chunk ? ghost_buffer_new(0, &b) : -ENOMEM;
	if (r < 0)
		worker_fail(report_fd, &rep, r, "out of memory on node %u", j->self);
	store(j, report_fd, b, chunk);
	for (;;) {
		struct keeper_cmd c;
		ssize_t n;

		do
			n = read(run->cmd_fd, &c, sizeof(c));
		while (n < 0 && errno == EINTR);
		if (n == 0)
			_exit(0); /* dropped, or the daemon is gone */
		if (n != (ssize_t)sizeof(c) || c.kind != KEEPER_SEND)
			_exit(1);
		c.host[sizeof(c.host) - 1] = '\0';
		send_image(&c, report_fd, b);
		explicit_bzero(c.key, sizeof(c.key));
	}
}

static void run_keeper(const void *job, int report_fd)
{
	keeper_main(job, report_fd);
}

int keeper_start(const struct keeper_job *j, pid_t *ret_pid, int *ret_report_fd,
		 int *ret_cmd_fd)
{
	struct keeper_run run = { .job = j };
	int cmd[2], keep[2], r;

	if (pipe2(cmd, O_CLOEXEC) < 0)
		return -errno;
	run.cmd_fd = cmd[0];
	keep[0] = j->listen_fd;
	keep[1] = cmd[0];
	r = worker_fork(keep, 2, true, run_keeper, &run, ret_pid, ret_report_fd);
	safe_close(cmd[0]);
	if (r < 0) {
		safe_close(cmd[1]);
		return r;
	}
	/* Commands are small records into an idle pipe: never blocks in practice. */
	(void)fcntl(cmd[1], F_SETFL, O_NONBLOCK);
	*ret_cmd_fd = cmd[1];
	return 0;
}

int keeper_command(int cmd_fd, const struct keeper_cmd *c)
{
	ssize_t n;

	do
		n = write(cmd_fd, c, sizeof(*c));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*c) ? 0 : -EIO;
}
