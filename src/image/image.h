/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ghost image format: a file header, then a sequence of records, the last
 * of which is IMG_REC_END. Everything is little-endian with fixed-size fields.
 *
 *   header   struct img_file_header (its own checksum covers it)
 *   record   struct img_rec_header, then `len` payload bytes
 *   ...
 *   record   IMG_REC_END
 *
 * Every record carries an XXH3-64 checksum over its payload, seeded with its
 * type, flags and length, so a flipped bit anywhere (header or payload, page
 * data included) is detected when the record is read. A reader never hands out
 * a payload it has not verified. Payload structs may grow at their end in later
 * versions. A payload without a variable part (RLIMITS, FD, SIGACTIONS,
 * ITIMERS, END) is accepted when at least as long as the struct the reader
 * knows, and the rest is ignored. A payload with a variable part (strings,
 * arrays, file data, page data) is exactly its struct followed by the variable
 * part its `*_len`/count fields describe (FILE_DATA: the rest of the payload),
 * so the variable part starts at `(const char *)(p + 1)`; a version that grows
 * such a struct bumps IMG_VERSION. img_rec_check() enforces all of this.
 *
 * Order written by the engine (and required by streaming importers): PROCESS,
 * then the per-process records (CREDS, RLIMITS, SCHED, MM, VMA..., FILE...,
 * FILE_DATA..., FD..., EPOLL..., SIGACTIONS, SIGPENDING, ITIMERS), then one THREAD per
 * thread, then PAGEMAP... (optional), then PAGES..., then END. A later format with several processes
 * repeats the PROCESS group; shared objects (FILE) carry ids that several
 * processes' FD records may name.
 */
#ifndef IMAGE_IMAGE_H
#define IMAGE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct ghost_io;

#define IMG_MAGIC "GHOSTIMG"
#define IMG_VERSION 1
#define IMG_ARCH_X86_64 62 /* EM_X86_64 */
#define IMG_PAGE_SIZE 4096u
/* Largest payload a reader accepts; also bounds a streaming importer's memory. */
#define IMG_REC_MAX (8u << 20)
/* Pages per IMG_REC_PAGES record, so a record fits IMG_REC_MAX with room to spare. */
#define IMG_PAGES_PER_REC 1024u
/* Longest path (cwd, exe, root, VMA or file path) a record may carry, in bytes. */
#define IMG_PATH_MAX 4096u
/* Size of one siginfo in an IMG_REC_SIGPENDING record. */
#define IMG_SIGINFO_SIZE 128u

struct img_file_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size; /* sizeof(struct img_file_header) of the writer */
	uint32_t arch;
	uint32_t page_size;
	uint64_t created_ns; /* CLOCK_REALTIME */
	char kernel[64];     /* uname -r of the exporting node, NUL-padded */
	char machine[32];    /* hostname of the exporting node, NUL-padded */
	uint64_t flags;
	uint64_t checksum; /* XXH3-64 of every byte before this field */
} __attribute__((packed));

enum img_rec_type {
	IMG_REC_PROCESS = 1,
	IMG_REC_CREDS = 2,
	IMG_REC_RLIMITS = 3,
	IMG_REC_SCHED = 4,
	IMG_REC_MM = 5,
	IMG_REC_VMA = 6,
	IMG_REC_FILE = 7,
	IMG_REC_FILE_DATA = 8,
	IMG_REC_FD = 9,
	IMG_REC_SIGACTIONS = 10,
	IMG_REC_SIGPENDING = 11,
	IMG_REC_ITIMERS = 12,
	IMG_REC_THREAD = 13,
	IMG_REC_PAGES = 14,
	IMG_REC_END = 15,
	IMG_REC_PAGEMAP = 16, /* written with IMG_RECF_OPTIONAL: older readers skip it */
	IMG_REC_EPOLL = 17,
	_IMG_REC_MAX,
};

enum img_rec_flags {
	IMG_RECF_OPTIONAL = 1 << 0, /* a reader that does not know the type may skip it */
};

struct img_rec_header {
	uint32_t type;
	uint32_t flags;
	uint64_t len;
	uint64_t checksum; /* XXH3-64 of the payload, seed = img_rec_seed(type, flags, len) */
} __attribute__((packed));

/* The checksum seed of a record: XXH3-64 of its type, flags and len (16 bytes,
 * little-endian) with a fixed seed, so a flipped bit in the record header is
 * detected like one in the payload. */
uint64_t img_rec_seed(uint32_t type, uint32_t flags, uint64_t len);

/* --- payloads ------------------------------------------------------------ */

enum img_process_flags {
	IMG_PROC_SHELL_JOB = 1 << 0, /* stdio was a terminal or outside pipe, replaced at restart */
};

struct img_process {
	uint32_t pid, ppid, pgid, sid;
	uint32_t nthreads;
	uint32_t flags;
	uint32_t umask;
	uint32_t exit_signal;
	char comm[16];
	uint64_t exe_size;     /* size of the executable, checked at restart */
	int64_t exe_mtime_ns;
	uint32_t cwd_len;  /* bytes of cwd after the struct, no NUL */
	uint32_t exe_len;  /* bytes of the exe path after cwd, no NUL */
	uint32_t root_len; /* bytes of the root path after exe, no NUL */
	uint32_t pad;
} __attribute__((packed));

struct img_creds {
	uint32_t uid, euid, suid, fsuid;
	uint32_t gid, egid, sgid, fsgid;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t securebits;
	uint32_t ngroups; /* uint32_t gids after the struct */
} __attribute__((packed));

#define IMG_RLIMITS 16
struct img_rlimits {
	struct {
		uint64_t cur, max;
	} lim[IMG_RLIMITS];
} __attribute__((packed));

struct img_sched {
	int32_t nice;
	uint32_t policy;
	uint32_t rt_priority;
	uint32_t personality;
	uint32_t affinity_len; /* bytes of CPU mask after the struct */
	uint32_t pad;
} __attribute__((packed));

struct img_mm {
	uint64_t start_code, end_code, start_data, end_data;
	uint64_t start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint32_t auxv_len; /* bytes of auxv (pairs of uint64_t) after the struct */
	uint32_t dumpable;
	uint64_t thp_disabled;
} __attribute__((packed));

enum img_vma_kind {
	IMG_VMA_ANON = 0,     /* anonymous private */
	IMG_VMA_ANON_SHARED,  /* MAP_SHARED|MAP_ANONYMOUS: content stored */
	IMG_VMA_FILE_PRIVATE, /* file-backed private: content stored where dirtied */
	IMG_VMA_FILE_SHARED,  /* file-backed shared: the file is the truth */
	IMG_VMA_VDSO,
	IMG_VMA_VVAR,
	IMG_VMA_VVAR_VCLOCK,
	IMG_VMA_HEAP,
	IMG_VMA_STACK,
	_IMG_VMA_KIND_MAX,
};

enum img_vma_flags {
	IMG_VMAF_GROWSDOWN = 1 << 0,
	IMG_VMAF_DONTFORK = 1 << 1, /* MADV_DONTFORK */
	IMG_VMAF_DONTDUMP = 1 << 2, /* MADV_DONTDUMP */
	IMG_VMAF_HUGEPAGE = 1 << 3, /* MADV_HUGEPAGE */
	IMG_VMAF_NOHUGEPAGE = 1 << 4,
	IMG_VMAF_LOCKED = 1 << 5,
	IMG_VMAF_RANDOM = 1 << 6, /* MADV_RANDOM */
	IMG_VMAF_SEQUENTIAL = 1 << 7,
	IMG_VMAF_WIPEONFORK = 1 << 8,
};

struct img_vma {
	uint64_t start, end;
	uint64_t pgoff; /* file offset in bytes */
	uint32_t prot;  /* PROT_* */
	uint32_t kind;  /* enum img_vma_kind */
	uint32_t flags; /* enum img_vma_flags */
	uint32_t path_len; /* bytes of file path after the struct, no NUL */
	uint64_t dev, ino;
	uint64_t file_size;
	int64_t file_mtime_ns;
} __attribute__((packed));

enum img_file_kind {
	IMG_FILE_REG = 0,
	IMG_FILE_REG_DELETED, /* content in FILE_DATA records */
	IMG_FILE_DIR,
	IMG_FILE_CHR,     /* /dev/null, /dev/zero, /dev/urandom, /dev/random, /dev/full */
	IMG_FILE_PIPE,    /* one end of a pipe; peer_id names the other end's FILE */
	IMG_FILE_SOCKPAIR, /* one end of an AF_UNIX socketpair; peer_id names the other */
	IMG_FILE_STDIO,   /* terminal or outside pipe: replaced by the restarter's stdio */
	/*
	 * A stream the exporter's caller carries itself (a dynamic stream: a
	 * pipe, socket or FIFO shared with another process). No data, no peer:
	 * the importer puts a placeholder at its numbers for its caller to
	 * replace. flags, mode, dev, ino and sock_type (sockets) say what it
	 * was, and the path holds its /proc fd link ("pipe:[N]", "socket:[N]",
	 * a FIFO's path); see img_carried_what(). Added within version 1: a
	 * reader that predates it refuses such an image as malformed (images
	 * without it are unchanged).
	 */
	IMG_FILE_CARRIED,
	/*
	 * An epoll instance (anon_inode:[eventpoll]): flags hold its O_NONBLOCK,
	 * no path, no data; its registrations are in EPOLL records. Added within
	 * version 1, as CARRIED was.
	 */
	IMG_FILE_EPOLL,
	_IMG_FILE_KIND_MAX,
};

struct img_file {
	uint32_t id;
	uint32_t kind;
	uint32_t flags;   /* open flags (O_ACCMODE, O_APPEND, O_NONBLOCK, ...) from fdinfo */
	uint32_t peer_id; /* pipe/socketpair: the FILE of the other end; else 0 */
	uint64_t pos;
	uint64_t size;
	uint32_t mode; /* st_mode */
	uint32_t sock_type; /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
	uint64_t rdev, dev, ino;
	int64_t mtime_ns;
	uint32_t pipe_size;  /* F_GETPIPE_SZ */
	uint32_t path_len; /* bytes of path after the struct, no NUL */
	uint32_t shutdown; /* socket: SHUT_RD bit 0, SHUT_WR bit 1 */
	uint32_t stdio_fd; /* IMG_FILE_STDIO: which of the restarter's fds 0,1,2 replaces it */
} __attribute__((packed));

/* Bytes held by a file: deleted file content, or bytes queued in a pipe or socket
 * (for a socket: the queue it would read; for datagrams one record per message). */
struct img_file_data {
	uint32_t file_id;
	uint32_t flags;
	uint64_t offset; /* for file content */
	/* data follows */
} __attribute__((packed));

struct img_fd {
	uint32_t fd;
	uint32_t file_id;
	uint32_t fd_flags; /* FD_CLOEXEC */
	uint32_t pad;
} __attribute__((packed));

struct img_sigaction {
	uint64_t handler, flags, restorer, mask;
} __attribute__((packed));

struct img_sigactions {
	struct img_sigaction act[64]; /* index = signal number - 1 */
} __attribute__((packed));

/* siginfo_t as the kernel fills it (128 bytes each). */
struct img_sigpending {
	uint32_t shared; /* 1: process-wide queue, 0: the thread's own */
	uint32_t tid;
	uint32_t count;  /* 128-byte siginfo records after the struct */
	uint32_t pad;
} __attribute__((packed));

struct img_itimers {
	struct {
		int64_t interval_sec, interval_usec, value_sec, value_usec;
	} timer[3]; /* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF */
} __attribute__((packed));

struct img_thread {
	uint32_t tid;
	uint32_t xstate_len; /* bytes of NT_X86_XSTATE after the struct */
	uint64_t regs[27];   /* struct user_regs_struct */
	uint64_t sigmask;
	uint64_t altstack_sp, altstack_size;
	uint32_t altstack_flags;
	uint32_t rseq_len;
	uint64_t rseq_ptr;
	uint32_t rseq_sig;
	uint32_t pad;
	uint64_t robust_list, robust_list_len;
	uint64_t clear_child_tid;
} __attribute__((packed));

struct img_pages {
	uint64_t vaddr;
	uint32_t npages; /* 1..IMG_PAGES_PER_REC pages of IMG_PAGE_SIZE after the struct */
	uint32_t flags;
} __attribute__((packed));

/*
 * The page runs the PAGES records after it fill, announced before the first
 * of them: each run is filled completely by those records, in address order.
 * Written with IMG_RECF_OPTIONAL (an image without it is as valid, and a
 * reader of version 1 that predates it skips it). A streaming importer uses it
 * to allocate the new process's memory ahead of the page data; it is a plan,
 * never trusted for content: only verified PAGES records put bytes anywhere.
 * A process with many runs gets several PAGEMAP records.
 */
struct img_pagemap {
	uint32_t count; /* struct img_page_run after the struct, ascending, disjoint */
	uint32_t flags;
} __attribute__((packed));

struct img_page_run {
	uint64_t vaddr;  /* page aligned */
	uint64_t npages; /* >= 1; the run does not wrap */
} __attribute__((packed));

/* Runs per PAGEMAP record the engine writes (1 MiB of runs). */
#define IMG_PAGEMAP_RUNS_PER_REC 65536u

/*
 * Registrations of one epoll instance (an IMG_FILE_EPOLL file), written after
 * the FD records: one record per IMG_EPOLL_TFDS_PER_REC registrations, so an
 * instance with more has several, and one without any has none. A
 * registration is the kernel's key, a file and the fd number it was
 * registered under, as /proc/PID/fdinfo shows it: fd tfd of the process held
 * file_id when it was exported (the exporter refuses a registration whose fd
 * was closed or replaced since), and an importer registers the file it puts
 * at tfd. events is what the kernel keeps: the event bits asked for, EPOLLERR
 * and EPOLLHUP (which every EPOLL_CTL_ADD adds), and EPOLLET, EPOLLONESHOT,
 * EPOLLEXCLUSIVE, EPOLLWAKEUP; an EPOLLONESHOT registration that has fired
 * (disarmed) has no event bit left. Added within version 1: a new record
 * type, no struct of version 1 grew, so IMG_VERSION stays; a reader that
 * predates it refuses such an image as malformed (an unknown type that is
 * not optional), and images without epoll are unchanged.
 */
struct img_epoll {
	uint32_t file_id; /* the IMG_FILE_EPOLL file */
	uint32_t count;   /* struct img_epoll_tfd after the struct */
} __attribute__((packed));

struct img_epoll_tfd {
	uint32_t tfd;     /* the watched fd number */
	uint32_t file_id; /* the FILE at tfd */
	uint32_t events;  /* struct epoll_event.events as the kernel keeps it */
	uint32_t pad;
	uint64_t data;    /* struct epoll_event.data */
} __attribute__((packed));

/* Registrations per EPOLL record the engine writes (1.5 MiB). */
#define IMG_EPOLL_TFDS_PER_REC 65536u

struct img_end {
	uint64_t nrecords; /* records before this one */
	uint64_t payload_bytes;
	uint64_t page_count;
} __attribute__((packed));

/* --- writing --------------------------------------------------------------- */

struct img_writer;

/* Write the file header (kernel release, arch, version of this machine). io is borrowed. */
int img_writer_new(struct ghost_io *io, struct img_writer **ret);
struct img_writer *img_writer_free(struct img_writer *w);
/*
 * One record whose payload is fixed followed by var (either may be empty).
 * -EINVAL for type 0, IMG_REC_END (see img_writer_finish()), a payload longer
 * than IMG_REC_MAX, or while a page record is open. The payload is not checked
 * here: the reader's img_rec_check() rejects what does not follow this header.
 */
int img_write_record(struct img_writer *w, uint32_t type, const void *fixed, size_t fixed_len,
		     const void *var, size_t var_len);
/* The same with record flags (enum img_rec_flags), e.g. an optional record a
 * reader that does not know its type skips. */
int img_write_record_flags(struct img_writer *w, uint32_t type, uint32_t flags, const void *fixed,
			   size_t fixed_len, const void *var, size_t var_len);
/*
 * Zero-copy page record: lends a pointer to npages * IMG_PAGE_SIZE bytes inside
 * the interface's storage; the caller fills them (process_vm_readv) and calls
 * img_write_pages_commit(), which checksums and appends the record. npages is
 * 1..IMG_PAGES_PER_REC and vaddr page aligned, else -EINVAL. No other writer
 * call may come between begin and commit.
 */
int img_write_pages_begin(struct img_writer *w, uint64_t vaddr, uint32_t npages, void **ret_data);
int img_write_pages_commit(struct img_writer *w);
/* Write IMG_REC_END and finish the interface. */
int img_writer_finish(struct img_writer *w);
uint64_t img_writer_pages(const struct img_writer *w);

/* --- reading --------------------------------------------------------------- */

struct img_record {
	uint32_t type;
	uint32_t flags;
	const void *payload; /* verified; lent until the next img_read_record() */
	size_t len;
};

struct img_reader;

enum img_reader_flags {
	IMG_READ_ANY_KERNEL = 1 << 0, /* accept an image made on another kernel release */
	/* The caller ran img_verify() on exactly the bytes this reader will read
	 * (io_map_all() of the same interface, which lends a private mapping):
	 * do not hash them a second time. Structure checks still run. */
	IMG_READ_VERIFIED = 1 << 1,
};

/* Read and check the file header: magic, version, arch, page size, kernel. io is borrowed. */
int img_reader_new(struct ghost_io *io, enum img_reader_flags flags, struct img_reader **ret);
struct img_reader *img_reader_free(struct img_reader *r);
const struct img_file_header *img_reader_header(const struct img_reader *r);
/* Next record, checksum verified. 1: a record; 0: END was read (and is returned in
 * rec); < 0: error (GHOST_ECHECKSUM, GHOST_ETRUNCATED, GHOST_ECORRUPT, -errno).
 * Known types have passed img_rec_check(); records of unknown types marked
 * IMG_RECF_OPTIONAL are skipped (and counted for END), others are
 * GHOST_ECORRUPT. Errors are sticky; after END every call returns 0 and END. */
int img_read_record(struct img_reader *r, struct img_record *rec);

/*
 * Walk a whole image held in memory (io_map_all) and verify the header and every
 * record, including that it ends with a well-formed END record whose counts
 * match. Nothing is reached before everything checks out.
 */
int img_verify(const void *data, size_t len, enum img_reader_flags flags);

/* img_verify(), calling between(userdata) after each record: lets the caller
 * keep other work going (the engine feeds page population to a new process). */
int img_verify_cb(const void *data, size_t len, enum img_reader_flags flags,
		  void (*between)(void *userdata), void *userdata);
/* From now on the reader skips checksums: the caller has just verified, with
 * img_verify(), the mapped bytes this reader reads. Structure checks still run. */
void img_reader_set_verified(struct img_reader *r);

/* What an IMG_FILE_CARRIED file was, for messages: "the read end of a pipe",
 * "a FIFO", "a stream socket", ...; path is the record's path. Never NULL. */
const char *img_carried_what(const struct img_file *f, const char *path, size_t path_len);

/* Minimum fixed size of a record type's payload; 0 for unknown types. */
size_t img_rec_min_size(uint32_t type);
/* "process", "vma", ...; "unknown" for unknown types. Never NULL. */
const char *img_rec_type_name(uint32_t type);
/*
 * Check a verified payload's internal lengths (strings, arrays) against len:
 * 0 when it is sound, GHOST_ECORRUPT when not, 0 for unknown types. Beyond
 * the sizes (see the top of this file), a checked payload guarantees:
 *  - paths are at most IMG_PATH_MAX bytes and hold no NUL byte;
 *  - PROCESS: pid and nthreads in 1..4194304;
 *  - CREDS: ngroups <= 65536; RLIMITS: cur <= max;
 *  - MM: auxv_len a multiple of 16;
 *  - VMA: start < end, both and pgoff page aligned, kind < _IMG_VMA_KIND_MAX;
 *  - FILE: id != 0, peer_id != id, kind < _IMG_FILE_KIND_MAX, stdio_fd <= 2,
 *    CARRIED and EPOLL: peer_id == 0;
 *  - FILE_DATA, FD: file_id != 0, FD: fd <= INT_MAX;
 *  - SIGPENDING: shared <= 1, count siginfos of IMG_SIGINFO_SIZE bytes;
 *  - ITIMERS: seconds >= 0, microseconds in 0..999999;
 *  - THREAD: tid != 0, xstate_len bytes of xstate;
 *  - PAGES: npages in 1..IMG_PAGES_PER_REC, vaddr page aligned and the range
 *    does not wrap, len exactly sizeof + npages * IMG_PAGE_SIZE;
 *  - PAGEMAP: count runs, each page aligned, npages >= 1, not wrapping, in
 *    ascending order without overlap;
 *  - EPOLL: file_id != 0, count registrations, each with tfd <= INT_MAX and
 *    a file_id that is not 0 and not the instance's own.
 */
int img_rec_check(uint32_t type, const void *payload, size_t len);

/*
 * Print an image as text (like CRIU's crit show) or, with json, as one JSON
 * document, appended to out; io is read to its END record. Page records are
 * summarized per VMA. On a damaged image it prints what it could decode, then
 * the error (an "error" member in JSON, which stays well-formed), and returns
 * that error; it never trusts an unverified byte.
 */
int img_show(struct ghost_io *io, enum img_reader_flags flags, bool json, struct buf *out);

#endif
