/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * img_show(): an image as text or JSON, like CRIU's `crit show`. Every record
 * becomes one object ("vma", "fd", ...) of key=value pairs in stream order;
 * page records are only counted, then summarized per VMA at the end, with
 * per-type sizes and totals. Only records the reader has verified are
 * decoded, so a damaged image prints its sound prefix and then the error.
 *
 * Text: one line per object, `type key=value ...`, strings quoted with
 * non-printable bytes as \xNN. JSON: {"header": {...} or null, "records":
 * [...], "pages": [...], "sizes": [...], "totals": {...}, "error": null or
 * "text"}; addresses are "0x..." strings, other numbers are numbers.
 * An EPOLL record becomes an "epoll" object naming the instance and its
 * lowest fd, then one "epoll_tfd" object per registration.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "image/image-int.h"
#include "io/io.h"
#include "ghost/error.h"
#include "base/banned.h"

struct show_file {
	uint32_t id, kind, flags;
	uint32_t mode, sock_type;
	uint64_t pos;
	char *path; /* path_len bytes, not NUL-terminated when path_len is 0 */
	size_t path_len;
};

struct show_fd {
	uint32_t fd, file_id;
};

struct show_vma {
	uint64_t start, end;
	uint64_t recs, pages;
};

struct show {
	struct buf *out;
	bool json;
	bool first; /* JSON: the next element needs no comma */
	int r;      /* first failure to produce output (-ENOMEM) */

	struct show_file *files;
	size_t nfiles, cfiles;
	struct show_fd *fds;
	size_t nfds, cfds;
	struct show_vma *vmas;
	size_t nvmas, cvmas;
	size_t last_vma;

	struct {
		uint64_t recs, bytes;
	} sizes[_IMG_REC_MAX]; /* [0]: unknown types */
	uint64_t stray_recs, stray_pages; /* pages outside every VMA */
};

/* --- output primitives ------------------------------------------------------- */

static void put(struct show *s, const char *text)
{
	int r = buf_append(s->out, text, strlen(text));

	if (r < 0 && s->r == 0)
		s->r = r;
}

static void putf(struct show *s, const char *fmt, ...) _printf_(2, 3);
static void putf(struct show *s, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(s->out, fmt, ap);
	va_end(ap);
	if (r < 0 && s->r == 0)
		s->r = r;
}

static void put_string(struct show *s, const char *p, size_t len)
{
	int r;

	if (s->json) {
		r = buf_append_json_string(s->out, p, len);
		if (r < 0 && s->r == 0)
			s->r = r;
		return;
	}
	put(s, "'");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\'' || c == '\\')
			putf(s, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			putf(s, "\\x%02x", c);
		else
			putf(s, "%c", c);
	}
	put(s, "'");
}

static void obj_begin(struct show *s, const char *type)
{
	if (s->json) {
		put(s, s->first ? "{\"type\":" : ",{\"type\":");
		put_string(s, type, strlen(type));
	} else {
		put(s, type);
	}
	s->first = false;
}

static void obj_end(struct show *s)
{
	put(s, s->json ? "}" : "\n");
}

static void key(struct show *s, const char *k)
{
	putf(s, s->json ? ",\"%s\":" : " %s=", k);
}

static void f_u64(struct show *s, const char *k, uint64_t v)
{
	key(s, k);
	putf(s, "%" PRIu64, v);
}

static void f_i64(struct show *s, const char *k, int64_t v)
{
	key(s, k);
	putf(s, "%" PRId64, v);
}

static void f_hex(struct show *s, const char *k, uint64_t v)
{
	key(s, k);
	putf(s, s->json ? "\"0x%" PRIx64 "\"" : "0x%" PRIx64, v);
}

static void f_oct(struct show *s, const char *k, uint64_t v)
{
	key(s, k);
	putf(s, s->json ? "\"%#" PRIo64 "\"" : "%#" PRIo64, v);
}

static void f_str(struct show *s, const char *k, const void *p, size_t len)
{
	key(s, k);
	put_string(s, p, len);
}

/* A bare word in text, a string in JSON. */
static void f_word(struct show *s, const char *k, const char *w)
{
	key(s, k);
	if (s->json)
		put_string(s, w, strlen(w));
	else
		put(s, w);
}

static void f_range(struct show *s, const char *k, uint64_t start, uint64_t end)
{
	key(s, k);
	putf(s, s->json ? "\"0x%" PRIx64 "-0x%" PRIx64 "\"" : "0x%" PRIx64 "-0x%" PRIx64, start,
	     end);
}

/* A list of words: "a,b" in text, ["a","b"] in JSON; words are plain ASCII. */
static void list_begin(struct show *s, const char *k)
{
	key(s, k);
	put(s, s->json ? "[" : "");
}

static void list_item(struct show *s, bool *first, const char *fmt, ...) _printf_(3, 4);
static void list_item(struct show *s, bool *first, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (!*first)
		put(s, ",");
	*first = false;
	if (s->json)
		put(s, "\"");
	va_start(ap, fmt);
	r = buf_vprintf(s->out, fmt, ap);
	va_end(ap);
	if (r < 0 && s->r == 0)
		s->r = r;
	if (s->json)
		put(s, "\"");
}

static void list_end(struct show *s, bool first)
{
	if (s->json)
		put(s, "]");
	else if (first)
		put(s, "-");
}

/* --- names --------------------------------------------------------------------- */

static const char *const vma_kinds[_IMG_VMA_KIND_MAX] = {
	"anon", "anon-shared", "file-private", "file-shared", "vdso",
	"vvar", "vvar-vclock", "heap",	       "stack",
};

static const char *const vma_flags[] = {
	"growsdown", "dontfork", "dontdump", "hugepage",   "nohugepage",
	"locked",    "random",	 "sequential", "wipeonfork",
};

static const char *const file_kinds[_IMG_FILE_KIND_MAX] = {
	"reg", "reg-deleted", "dir", "chr", "pipe", "sockpair", "stdio", "carried", "epoll",
};

/* struct epoll_event.events bits, as epoll_ctl(2) names them. */
static const struct {
	uint32_t bit;
	const char *name;
} epoll_bits[] = {
	{ EPOLLIN, "in" },	     { EPOLLPRI, "pri" },	{ EPOLLOUT, "out" },
	{ EPOLLERR, "err" },	     { EPOLLHUP, "hup" },	{ EPOLLRDNORM, "rdnorm" },
	{ EPOLLRDBAND, "rdband" },   { EPOLLWRNORM, "wrnorm" }, { EPOLLWRBAND, "wrband" },
	{ EPOLLMSG, "msg" },	     { EPOLLRDHUP, "rdhup" },	{ EPOLLEXCLUSIVE, "exclusive" },
	{ EPOLLWAKEUP, "wakeup" },   { EPOLLONESHOT, "oneshot" }, { EPOLLET, "et" },
};

/* The bits that say how a registration behaves rather than what it waits for. */
#define EPOLL_MODE_BITS ((uint32_t)(EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET))

const char *img_carried_what(const struct img_file *f, const char *path, size_t path_len)
{
	switch (f->mode & S_IFMT) {
	case S_IFIFO:
		if (path_len >= 5 && memcmp(path, "pipe:", 5) == 0)
			return (f->flags & O_ACCMODE) == O_RDONLY   ? "the read end of a pipe"
			       : (f->flags & O_ACCMODE) == O_WRONLY ? "the write end of a pipe"
								    : "a pipe";
		return "a FIFO";
	case S_IFSOCK:
		switch (f->sock_type) {
		case SOCK_STREAM:
			return "a stream socket";
		case SOCK_DGRAM:
			return "a datagram socket";
		case SOCK_SEQPACKET:
			return "a seqpacket socket";
		}
		return "a socket";
	case S_IFCHR:
		return "a character device";
	}
	return "a file";
}

static const char *const rlimit_names[IMG_RLIMITS] = {
	"cpu",	  "fsize", "data",    "stack",	  "core",     "rss",	"nproc",  "nofile",
	"memlock", "as",    "locks",   "sigpending", "msgqueue", "nice",	"rtprio", "rttime",
};

static const char *const sig_names[32] = {
	NULL,	    "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",  "SIGTRAP", "SIGABRT", "SIGBUS",
	"SIGFPE",   "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
	"SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
	"SIGXCPU",  "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR",  "SIGSYS",
};

static void sig_item(struct show *s, bool *first, int64_t sig)
{
	if (sig > 0 && sig < 32)
		list_item(s, first, "%s", sig_names[sig]);
	else if (sig >= 32 && sig <= 64)
		list_item(s, first, "SIGRTMIN+%" PRId64, sig - 32);
	else
		list_item(s, first, "%" PRId64, sig);
}

static void f_sigmask(struct show *s, const char *k, uint64_t mask)
{
	bool first = true;

	list_begin(s, k);
	for (int i = 0; i < 64; i++)
		if (mask & (UINT64_C(1) << i))
			sig_item(s, &first, i + 1);
	list_end(s, first);
}

static void f_limit(struct show *s, const char *k, uint64_t v)
{
	if (v == UINT64_MAX)
		f_word(s, k, "unlimited");
	else
		f_u64(s, k, v);
}

static const char *access_name(uint32_t flags)
{
	switch (flags & 3) {
	case 0:
		return "r";
	case 1:
		return "w";
	case 2:
		return "rw";
	}
	return "?";
}

/* --- tables ---------------------------------------------------------------------- */

static void *grow(struct show *s, void *arr, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap * 2 : 16;
	void *p;

	if (n < *cap)
		return arr;
	p = NULL;
	if (c > n && c < SIZE_MAX / size)
		p = realloc(arr, c * size);
	if (!p) {
		if (s->r == 0)
			s->r = -ENOMEM;
		return NULL;
	}
	*cap = c;
	return p;
}

static const struct show_fd *fd_by_file(const struct show *s, uint32_t file_id)
{
	const struct show_fd *lowest = NULL;

	for (size_t i = 0; i < s->nfds; i++)
		if (s->fds[i].file_id == file_id && (!lowest || s->fds[i].fd < lowest->fd))
			lowest = &s->fds[i];
	return lowest;
}

static const struct show_file *file_find(const struct show *s, uint32_t id)
{
	for (size_t i = s->nfiles; i > 0; i--)
		if (s->files[i - 1].id == id)
			return &s->files[i - 1];
	return NULL;
}

static struct show_vma *vma_find(struct show *s, uint64_t addr)
{
	if (s->last_vma < s->nvmas && addr >= s->vmas[s->last_vma].start &&
	    addr < s->vmas[s->last_vma].end)
		return &s->vmas[s->last_vma];
	for (size_t i = 0; i < s->nvmas; i++)
		if (addr >= s->vmas[i].start && addr < s->vmas[i].end) {
			s->last_vma = i;
			return &s->vmas[i];
		}
	return NULL;
}

/* --- records --------------------------------------------------------------------- */

static void show_header(struct show *s, const struct img_file_header *h)
{
	char when[64] = "";
	time_t t = (time_t)(h->created_ns / 1000000000u);
	struct tm tm;

	obj_begin(s, "header");
	f_u64(s, "version", h->version);
	if (h->arch == IMG_ARCH_X86_64)
		f_word(s, "arch", "x86_64");
	else
		f_u64(s, "arch", h->arch);
	f_u64(s, "page_size", h->page_size);
	f_u64(s, "header_size", h->header_size);
	f_str(s, "kernel", h->kernel, strnlen(h->kernel, sizeof(h->kernel)));
	f_str(s, "machine", h->machine, strnlen(h->machine, sizeof(h->machine)));
	if (gmtime_r(&t, &tm) && strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		f_word(s, "created", when);
	else
		f_u64(s, "created_ns", h->created_ns);
	f_hex(s, "flags", h->flags);
	f_hex(s, "checksum", h->checksum);
	obj_end(s);
}

static void show_process(struct show *s, const struct img_process *p)
{
	const char *var = (const char *)(p + 1);

	obj_begin(s, "process");
	f_u64(s, "pid", p->pid);
	f_u64(s, "ppid", p->ppid);
	f_u64(s, "pgid", p->pgid);
	f_u64(s, "sid", p->sid);
	f_u64(s, "nthreads", p->nthreads);
	f_str(s, "comm", p->comm, strnlen(p->comm, sizeof(p->comm)));
	f_str(s, "exe", var + p->cwd_len, p->exe_len);
	f_str(s, "cwd", var, p->cwd_len);
	f_str(s, "root", var + p->cwd_len + p->exe_len, p->root_len);
	f_oct(s, "umask", p->umask);
	f_u64(s, "exit_signal", p->exit_signal);
	f_hex(s, "flags", p->flags);
	if (p->flags & IMG_PROC_SHELL_JOB)
		f_word(s, "shell_job", "yes");
	f_u64(s, "exe_size", p->exe_size);
	f_i64(s, "exe_mtime_ns", p->exe_mtime_ns);
	obj_end(s);
}

static void show_creds(struct show *s, const struct img_creds *p)
{
	const uint8_t *g = (const uint8_t *)(p + 1);
	bool first = true;

	obj_begin(s, "creds");
	f_u64(s, "uid", p->uid);
	f_u64(s, "euid", p->euid);
	f_u64(s, "suid", p->suid);
	f_u64(s, "fsuid", p->fsuid);
	f_u64(s, "gid", p->gid);
	f_u64(s, "egid", p->egid);
	f_u64(s, "sgid", p->sgid);
	f_u64(s, "fsgid", p->fsgid);
	f_hex(s, "cap_inh", p->cap_inh);
	f_hex(s, "cap_prm", p->cap_prm);
	f_hex(s, "cap_eff", p->cap_eff);
	f_hex(s, "cap_bnd", p->cap_bnd);
	f_hex(s, "cap_amb", p->cap_amb);
	f_hex(s, "securebits", p->securebits);
	list_begin(s, "groups");
	for (uint32_t i = 0; i < p->ngroups; i++) {
		uint32_t gid;

		memcpy(&gid, g + 4 * (size_t)i, sizeof(gid));
		list_item(s, &first, "%" PRIu32, gid);
	}
	list_end(s, first);
	obj_end(s);
}

static void show_rlimits(struct show *s, const struct img_rlimits *p)
{
	for (size_t i = 0; i < IMG_RLIMITS; i++) {
		obj_begin(s, "rlimit");
		f_word(s, "name", rlimit_names[i]);
		f_limit(s, "cur", p->lim[i].cur);
		f_limit(s, "max", p->lim[i].max);
		obj_end(s);
	}
}

static void show_sched(struct show *s, const struct img_sched *p)
{
	static const char *const policies[] = { "other", "fifo", "rr", "batch", "iso", "idle",
						"deadline" };
	const uint8_t *mask = (const uint8_t *)(p + 1);
	bool first = true;
	uint64_t bits = (uint64_t)p->affinity_len * 8, i = 0;

	obj_begin(s, "sched");
	f_i64(s, "nice", p->nice);
	if (p->policy < ARRAY_SIZE(policies))
		f_word(s, "policy", policies[p->policy]);
	else
		f_u64(s, "policy", p->policy);
	f_u64(s, "rt_priority", p->rt_priority);
	f_hex(s, "personality", p->personality);
	list_begin(s, "cpus");
	while (i < bits) {
		uint64_t j;

		if (!(mask[i / 8] & (1u << (i % 8)))) {
			i++;
			continue;
		}
		for (j = i; j + 1 < bits && (mask[(j + 1) / 8] & (1u << ((j + 1) % 8))); j++)
			;
		if (j == i)
			list_item(s, &first, "%" PRIu64, i);
		else
			list_item(s, &first, "%" PRIu64 "-%" PRIu64, i, j);
		i = j + 1;
	}
	list_end(s, first);
	obj_end(s);
}

static void show_mm(struct show *s, const struct img_mm *p)
{
	obj_begin(s, "mm");
	f_range(s, "code", p->start_code, p->end_code);
	f_range(s, "data", p->start_data, p->end_data);
	f_range(s, "brk", p->start_brk, p->brk);
	f_hex(s, "start_stack", p->start_stack);
	f_range(s, "args", p->arg_start, p->arg_end);
	f_range(s, "env", p->env_start, p->env_end);
	f_u64(s, "auxv_entries", p->auxv_len / 16);
	f_u64(s, "dumpable", p->dumpable);
	f_u64(s, "thp_disabled", p->thp_disabled);
	obj_end(s);
}

static void show_vma(struct show *s, const struct img_vma *p)
{
	char prot[5];
	bool first = true;
	struct show_vma *v;
	bool shared = p->kind == IMG_VMA_ANON_SHARED || p->kind == IMG_VMA_FILE_SHARED;

	prot[0] = (p->prot & 1) ? 'r' : '-';
	prot[1] = (p->prot & 2) ? 'w' : '-';
	prot[2] = (p->prot & 4) ? 'x' : '-';
	prot[3] = shared ? 's' : 'p';
	prot[4] = '\0';

	obj_begin(s, "vma");
	f_range(s, "range", p->start, p->end);
	f_word(s, "prot", prot);
	f_word(s, "kind", vma_kinds[p->kind]);
	list_begin(s, "flags");
	for (size_t i = 0; i < ARRAY_SIZE(vma_flags); i++)
		if (p->flags & (1u << i))
			list_item(s, &first, "%s", vma_flags[i]);
	list_end(s, first);
	if (p->path_len) {
		f_str(s, "path", p + 1, p->path_len);
		f_hex(s, "pgoff", p->pgoff);
		f_u64(s, "dev", p->dev);
		f_u64(s, "ino", p->ino);
	}
	obj_end(s);

	v = grow(s, s->vmas, &s->cvmas, s->nvmas, sizeof(*s->vmas));
	if (!v)
		return;
	s->vmas = v;
	s->vmas[s->nvmas++] = (struct show_vma){ .start = p->start, .end = p->end };
}

static void show_file(struct show *s, const struct img_file *p)
{
	struct show_file *f;

	obj_begin(s, "file");
	f_u64(s, "id", p->id);
	f_word(s, "kind", file_kinds[p->kind]);
	f_word(s, "access", access_name(p->flags));
	f_hex(s, "flags", p->flags);
	f_u64(s, "pos", p->pos);
	f_u64(s, "size", p->size);
	f_oct(s, "mode", p->mode);
	if (p->peer_id)
		f_u64(s, "peer", p->peer_id);
	if (p->kind == IMG_FILE_SOCKPAIR) {
		f_u64(s, "sock_type", p->sock_type);
		f_u64(s, "shutdown", p->shutdown);
	}
	if (p->kind == IMG_FILE_PIPE)
		f_u64(s, "pipe_size", p->pipe_size);
	if (p->kind == IMG_FILE_STDIO)
		f_u64(s, "stdio_fd", p->stdio_fd);
	if (p->kind == IMG_FILE_CARRIED) {
		const char *what = img_carried_what(p, (const char *)(p + 1), p->path_len);

		f_str(s, "stream", what, strlen(what));
		if ((p->mode & S_IFMT) == S_IFSOCK)
			f_u64(s, "sock_type", p->sock_type);
		f_u64(s, "ino", p->ino);
	}
	f_str(s, "path", p + 1, p->path_len);
	obj_end(s);

	f = grow(s, s->files, &s->cfiles, s->nfiles, sizeof(*s->files));
	if (!f)
		return;
	s->files = f;
	f = &s->files[s->nfiles];
	*f = (struct show_file){ .id = p->id, .kind = p->kind, .flags = p->flags, .pos = p->pos,
				 .mode = p->mode, .sock_type = p->sock_type };
	if (p->path_len) {
		f->path = malloc(p->path_len);
		if (!f->path) {
			if (s->r == 0)
				s->r = -ENOMEM;
			return;
		}
		memcpy(f->path, p + 1, p->path_len);
		f->path_len = p->path_len;
	}
	s->nfiles++;
}

static void show_file_data(struct show *s, const struct img_file_data *p, size_t len)
{
	obj_begin(s, "file_data");
	f_u64(s, "file", p->file_id);
	f_u64(s, "offset", p->offset);
	f_u64(s, "bytes", len - sizeof(*p));
	obj_end(s);
}

static void show_fd(struct show *s, const struct img_fd *p)
{
	const struct show_file *f = file_find(s, p->file_id);

	obj_begin(s, "fd");
	f_u64(s, "fd", p->fd);
	f_u64(s, "file", p->file_id);
	f_word(s, "cloexec", (p->fd_flags & 1) ? "yes" : "no");
	if (f) {
		f_word(s, "kind", file_kinds[f->kind]);
		f_word(s, "access", access_name(f->flags));
		f_hex(s, "flags", f->flags);
		f_u64(s, "pos", f->pos);
		if (f->kind == IMG_FILE_CARRIED) {
			struct img_file x = { .flags = f->flags, .mode = f->mode,
					      .sock_type = f->sock_type };
			const char *what = img_carried_what(&x, f->path ? f->path : "", f->path_len);

			f_str(s, "stream", what, strlen(what));
		}
		f_str(s, "path", f->path ? f->path : "", f->path_len);
	} else {
		f_word(s, "kind", "missing");
	}
	obj_end(s);

	{
		struct show_fd *nf = grow(s, s->fds, &s->cfds, s->nfds, sizeof(*s->fds));

		if (!nf)
			return;
		s->fds = nf;
		s->fds[s->nfds++] = (struct show_fd){ .fd = p->fd, .file_id = p->file_id };
	}
}

static void f_epoll_events(struct show *s, const char *k, uint32_t events)
{
	uint32_t rest = events;
	bool first = true;

	list_begin(s, k);
	for (size_t i = 0; i < ARRAY_SIZE(epoll_bits); i++)
		if (events & epoll_bits[i].bit) {
			list_item(s, &first, "%s", epoll_bits[i].name);
			rest &= ~epoll_bits[i].bit;
		}
	if (rest)
		list_item(s, &first, "0x%" PRIx32, rest);
	/* A one-shot registration that fired waits for nothing until re-armed. */
	if ((events & EPOLLONESHOT) && !(events & ~EPOLL_MODE_BITS))
		list_item(s, &first, "disarmed");
	list_end(s, first);
}

static void show_epoll(struct show *s, const struct img_epoll *p)
{
	const uint8_t *tfd = (const uint8_t *)(p + 1);
	const struct show_fd *fd = fd_by_file(s, p->file_id);

	obj_begin(s, "epoll");
	f_u64(s, "file", p->file_id);
	if (fd)
		f_u64(s, "fd", fd->fd);
	else
		f_word(s, "fd", "missing");
	f_u64(s, "registrations", p->count);
	obj_end(s);
	for (uint32_t i = 0; i < p->count; i++) {
		const struct show_file *f;
		struct img_epoll_tfd t;

		memcpy(&t, tfd + (size_t)i * sizeof(t), sizeof(t));
		f = file_find(s, t.file_id);
		obj_begin(s, "epoll_tfd");
		f_u64(s, "file", p->file_id);
		f_u64(s, "tfd", t.tfd);
		f_u64(s, "target", t.file_id);
		f_word(s, "kind", f ? file_kinds[f->kind] : "missing");
		f_hex(s, "events", t.events);
		f_epoll_events(s, "flags", t.events);
		f_hex(s, "data", t.data);
		obj_end(s);
	}
}

static void show_sigactions(struct show *s, const struct img_sigactions *p)
{
	for (int i = 0; i < 64; i++) {
		const struct img_sigaction *a = &p->act[i];
		bool first = true;

		if (a->handler == 0) /* SIG_DFL */
			continue;
		obj_begin(s, "sigaction");
		list_begin(s, "signal");
		sig_item(s, &first, i + 1);
		list_end(s, first);
		if (a->handler == 1)
			f_word(s, "handler", "ignore");
		else
			f_hex(s, "handler", a->handler);
		f_hex(s, "flags", a->flags);
		f_hex(s, "restorer", a->restorer);
		f_sigmask(s, "mask", a->mask);
		obj_end(s);
	}
}

static void show_sigpending(struct show *s, const struct img_sigpending *p)
{
	const uint8_t *info = (const uint8_t *)(p + 1);
	bool first = true;

	obj_begin(s, "sigpending");
	f_word(s, "queue", p->shared ? "process" : "thread");
	if (!p->shared)
		f_u64(s, "tid", p->tid);
	f_u64(s, "count", p->count);
	list_begin(s, "signals");
	for (uint32_t i = 0; i < p->count; i++) {
		int32_t signo;

		memcpy(&signo, info + (size_t)i * IMG_SIGINFO_SIZE, sizeof(signo));
		sig_item(s, &first, signo);
	}
	list_end(s, first);
	obj_end(s);
}

static void show_itimers(struct show *s, const struct img_itimers *p)
{
	static const char *const which[3] = { "real", "virtual", "prof" };

	for (size_t i = 0; i < 3; i++) {
		obj_begin(s, "itimer");
		f_word(s, "which", which[i]);
		key(s, "interval");
		putf(s, s->json ? "\"%" PRId64 ".%06" PRId64 "\"" : "%" PRId64 ".%06" PRId64,
		     p->timer[i].interval_sec, p->timer[i].interval_usec);
		key(s, "value");
		putf(s, s->json ? "\"%" PRId64 ".%06" PRId64 "\"" : "%" PRId64 ".%06" PRId64,
		     p->timer[i].value_sec, p->timer[i].value_usec);
		obj_end(s);
	}
}

/* user_regs_struct slots */
enum { REG_RAX = 10, REG_ORIG_RAX = 15, REG_RIP = 16, REG_RSP = 19, REG_FS_BASE = 21 };

static void show_thread(struct show *s, const struct img_thread *p)
{
	obj_begin(s, "thread");
	f_u64(s, "tid", p->tid);
	f_hex(s, "rip", p->regs[REG_RIP]);
	f_hex(s, "rsp", p->regs[REG_RSP]);
	f_hex(s, "rax", p->regs[REG_RAX]);
	f_i64(s, "orig_rax", (int64_t)p->regs[REG_ORIG_RAX]);
	f_hex(s, "fs_base", p->regs[REG_FS_BASE]);
	f_sigmask(s, "sigmask", p->sigmask);
	if (p->altstack_size) {
		f_hex(s, "altstack", p->altstack_sp);
		f_u64(s, "altstack_size", p->altstack_size);
	}
	if (p->rseq_len)
		f_hex(s, "rseq", p->rseq_ptr);
	if (p->robust_list)
		f_hex(s, "robust_list", p->robust_list);
	f_hex(s, "clear_child_tid", p->clear_child_tid);
	f_u64(s, "xstate_bytes", p->xstate_len);
	obj_end(s);
}

static void count_pages(struct show *s, const struct img_pages *p)
{
	struct show_vma *v = vma_find(s, p->vaddr);

	if (v) {
		v->recs++;
		v->pages += p->npages;
	} else {
		s->stray_recs++;
		s->stray_pages += p->npages;
	}
}

static void show_pagemap(struct show *s, const struct img_pagemap *p)
{
	const uint8_t *run = (const uint8_t *)(p + 1);
	struct img_page_run first = { 0 }, last = { 0 };
	uint64_t pages = 0;

	for (uint32_t i = 0; i < p->count; i++) {
		memcpy(&last, run + (size_t)i * sizeof(last), sizeof(last));
		if (i == 0)
			first = last;
		pages += last.npages;
	}
	obj_begin(s, "pagemap");
	f_u64(s, "runs", p->count);
	f_u64(s, "pages", pages);
	if (p->count)
		f_range(s, "span", first.vaddr, last.vaddr + last.npages * IMG_PAGE_SIZE);
	obj_end(s);
}

static void show_end(struct show *s, const struct img_end *p)
{
	obj_begin(s, "end");
	f_u64(s, "records", p->nrecords);
	f_u64(s, "payload_bytes", p->payload_bytes);
	f_u64(s, "pages", p->page_count);
	obj_end(s);
}

static void show_record(struct show *s, const struct img_record *rec)
{
	const void *p = rec->payload;

	s->sizes[rec->type < _IMG_REC_MAX ? rec->type : 0].recs++;
	s->sizes[rec->type < _IMG_REC_MAX ? rec->type : 0].bytes +=
		sizeof(struct img_rec_header) + rec->len;

	switch (rec->type) {
	case IMG_REC_PROCESS:
		show_process(s, p);
		break;
	case IMG_REC_CREDS:
		show_creds(s, p);
		break;
	case IMG_REC_RLIMITS:
		show_rlimits(s, p);
		break;
	case IMG_REC_SCHED:
		show_sched(s, p);
		break;
	case IMG_REC_MM:
		show_mm(s, p);
		break;
	case IMG_REC_VMA:
		show_vma(s, p);
		break;
	case IMG_REC_FILE:
		show_file(s, p);
		break;
	case IMG_REC_FILE_DATA:
		show_file_data(s, p, rec->len);
		break;
	case IMG_REC_FD:
		show_fd(s, p);
		break;
	case IMG_REC_SIGACTIONS:
		show_sigactions(s, p);
		break;
	case IMG_REC_SIGPENDING:
		show_sigpending(s, p);
		break;
	case IMG_REC_ITIMERS:
		show_itimers(s, p);
		break;
	case IMG_REC_THREAD:
		show_thread(s, p);
		break;
	case IMG_REC_PAGES:
		count_pages(s, p);
		break;
	case IMG_REC_PAGEMAP:
		show_pagemap(s, p);
		break;
	case IMG_REC_EPOLL:
		show_epoll(s, p);
		break;
	case IMG_REC_END:
		show_end(s, p);
		break;
	default:
		break;
	}
}

/* --- summary --------------------------------------------------------------------- */

static void show_page_summary(struct show *s)
{
	for (size_t i = 0; i < s->nvmas; i++) {
		const struct show_vma *v = &s->vmas[i];

		if (!v->recs)
			continue;
		obj_begin(s, "pages");
		f_range(s, "vma", v->start, v->end);
		f_u64(s, "records", v->recs);
		f_u64(s, "pages", v->pages);
		f_u64(s, "bytes", v->pages * IMG_PAGE_SIZE);
		obj_end(s);
	}
	if (s->stray_recs) {
		obj_begin(s, "pages");
		f_word(s, "vma", "none");
		f_u64(s, "records", s->stray_recs);
		f_u64(s, "pages", s->stray_pages);
		f_u64(s, "bytes", s->stray_pages * IMG_PAGE_SIZE);
		obj_end(s);
	}
}

static void show_sizes(struct show *s)
{
	for (uint32_t t = 0; t < _IMG_REC_MAX; t++) {
		if (!s->sizes[t].recs)
			continue;
		obj_begin(s, "size");
		f_word(s, "record", img_rec_type_name(t));
		f_u64(s, "count", s->sizes[t].recs);
		f_u64(s, "bytes", s->sizes[t].bytes);
		obj_end(s);
	}
}

static void show_totals(struct show *s, uint64_t image_bytes)
{
	uint64_t recs = 0, pages = 0, page_recs = s->sizes[IMG_REC_PAGES].recs;

	for (uint32_t t = 0; t < _IMG_REC_MAX; t++)
		recs += s->sizes[t].recs;
	for (size_t i = 0; i < s->nvmas; i++)
		pages += s->vmas[i].pages;
	pages += s->stray_pages;

	obj_begin(s, "totals");
	f_u64(s, "image_bytes", image_bytes);
	f_u64(s, "records", recs);
	f_u64(s, "page_records", page_recs);
	f_u64(s, "pages", pages);
	f_u64(s, "page_bytes", pages * IMG_PAGE_SIZE);
	f_u64(s, "metadata_bytes", image_bytes - MIN(image_bytes, pages * IMG_PAGE_SIZE));
	obj_end(s);
}

static void section(struct show *s, const char *name)
{
	if (s->json)
		putf(s, "],\"%s\":[", name);
	s->first = true;
}

int img_show(struct ghost_io *io, enum img_reader_flags flags, bool json, struct buf *out)
{
	struct show s = { .out = out, .json = json, .first = true };
	struct img_reader *r;
	struct img_record rec;
	int err;

	if (!io || !out)
		return -EINVAL;
	err = img_reader_alloc(io, flags, &r);
	if (err < 0)
		return err;

	if (json)
		put(&s, "{\"header\":");
	err = img_reader_read_header(r);
	if (r->have_header)
		show_header(&s, &r->hdr);
	else if (json)
		put(&s, "null");

	if (json)
		put(&s, ",\"records\":[");
	s.first = true;
	while (err == 0) {
		int k = img_read_record(r, &rec);

		if (k < 0) {
			err = k;
			break;
		}
		show_record(&s, &rec);
		if (k == 0)
			break;
	}

	section(&s, "pages");
	show_page_summary(&s);
	section(&s, "sizes");
	show_sizes(&s);
	if (json)
		put(&s, "],\"totals\":");
	s.first = true;
	show_totals(&s, io_offset(io));

	if (json) {
		put(&s, ",\"error\":");
		if (err < 0) {
			const char *e = ghost_strerror(err);

			put_string(&s, e, strlen(e));
		} else {
			put(&s, "null");
		}
		put(&s, "}\n");
	} else if (err < 0) {
		putf(&s, "error: %s\n", ghost_strerror(err));
	}

	for (size_t i = 0; i < s.nfiles; i++)
		free(s.files[i].path);
	free(s.files);
	free(s.fds);
	free(s.vmas);
	img_reader_free(r);
	return err < 0 ? err : s.r;
}
