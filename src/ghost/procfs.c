/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Readers for /proc/PID/{smaps,status,stat}: the state the kernel shows from outside. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>

#define LOG_PREFIX "procfs"
#include "base/fileio.h"
#include "base/log.h"
#include "ghost/ghost-int.h"
#include "base/banned.h"

#define PF_KTHREAD 0x00200000u

static uint32_t vmflags_parse(const char *s)
{
	static const struct {
		char name[3];
		uint32_t flag;
	} map[] = {
		{ "gd", IMG_VMAF_GROWSDOWN }, { "dc", IMG_VMAF_DONTFORK },
		{ "dd", IMG_VMAF_DONTDUMP },   { "hg", IMG_VMAF_HUGEPAGE },
		{ "nh", IMG_VMAF_NOHUGEPAGE }, { "lo", IMG_VMAF_LOCKED },
		{ "rr", IMG_VMAF_RANDOM },     { "sr", IMG_VMAF_SEQUENTIAL },
		{ "wf", IMG_VMAF_WIPEONFORK },
	};
	uint32_t f = 0;

	while (*s) {
		while (*s == ' ')
			s++;
		if (!s[0] || !s[1])
			break;
		for (size_t i = 0; i < ARRAY_SIZE(map); i++)
			if (s[0] == map[i].name[0] && s[1] == map[i].name[1])
				f |= map[i].flag;
		s += 2;
		while (*s && *s != ' ')
			s++;
	}
	return f;
}

/* "start-end perms offset major:minor inode   path" */
static int parse_vma_line(const char *line, struct proc_vma *v)
{
	unsigned long long start, end, off, ino;
	unsigned maj, min;
	char perms[5];
	int n = 0;

	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj, &min,
		   &ino, &n) < 7)
		return -EINVAL;
	*v = (struct proc_vma){ .start = start, .end = end, .pgoff = off, .ino = ino };
	v->dev = makedev(maj, min);
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	if (n > 0 && line[n]) {
		const char *p = line + n;
		size_t len = strlen(p);
		static const char del[] = " (deleted)";

		while (len && (p[len - 1] == '\n' || p[len - 1] == ' '))
			len--;
		if (len >= sizeof(del) - 1 && memcmp(p + len - (sizeof(del) - 1), del,
						     sizeof(del) - 1) == 0) {
			v->deleted = true;
			len -= sizeof(del) - 1;
		}
		if (len) {
			v->path = strndup(p, len);
			if (!v->path)
				return -ENOMEM;
		}
	}
	return 0;
}

void proc_maps_release(struct proc_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->vma[i].path);
	free(m->vma);
	*m = (struct proc_maps){ 0 };
}

int proc_read_maps(pid_t pid, struct proc_maps *ret)
{
	struct buf b = BUF_INIT;
	struct proc_maps m = { 0 };
	size_t cap = 0;
	char path[64];
	char *line, *next;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0)
		goto out;
	for (line = b.data; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (strncmp(line, "VmFlags:", 8) == 0) {
			if (m.n)
				m.vma[m.n - 1].vmflags = vmflags_parse(line + 8);
			continue;
		}
		/* A mapping line starts with a hex digit and has '-' before the first space. */
		if (!isxdigit((unsigned char)line[0]) || !strchr(line, '-') ||
		    strchr(line, ':') < strchr(line, ' '))
			continue;
		if (m.n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct proc_vma *nv = reallocarray(m.vma, ncap, sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			m.vma = nv;
			cap = ncap;
		}
		r = parse_vma_line(line, &m.vma[m.n]);
		if (r < 0)
			goto out;
		m.n++;
	}
	*ret = m;
	m = (struct proc_maps){ 0 };
	r = 0;
out:
	proc_maps_release(&m);
	buf_release(&b);
	return r;
}

static int parse_ids(const char *s, uint32_t out[4])
{
	unsigned a, b, c, d;

	if (sscanf(s, "%u %u %u %u", &a, &b, &c, &d) != 4)
		return -EINVAL;
	out[0] = a;
	out[1] = b;
	out[2] = c;
	out[3] = d;
	return 0;
}

void proc_status_release(struct proc_status *s)
{
	free(s->groups);
	s->groups = NULL;
}

int proc_read_status(pid_t pid, struct proc_status *ret)
{
	struct buf b = BUF_INIT;
	struct proc_status s = { .umask = 022 };
	struct proc_stat st;
	char path[64];
	char *line, *next;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	r = read_file_at(AT_FDCWD, path, &b);
	if (r < 0)
		goto out;
	for (line = b.data; line && *line; line = next) {
		char *v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		v = strchr(line, ':');
		if (!v)
			continue;
		*v++ = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcmp(line, "State") == 0)
			s.state = v[0];
		else if (strcmp(line, "Threads") == 0)
			s.threads = (int)strtol(v, NULL, 10);
		else if (strcmp(line, "Uid") == 0)
			r = parse_ids(v, s.uid);
		else if (strcmp(line, "Gid") == 0)
			r = parse_ids(v, s.gid);
		else if (strcmp(line, "PPid") == 0)
			s.ppid = (pid_t)strtol(v, NULL, 10);
		else if (strcmp(line, "TracerPid") == 0)
			s.tracer = (pid_t)strtol(v, NULL, 10);
		else if (strcmp(line, "Umask") == 0)
			s.umask = (uint32_t)strtoul(v, NULL, 8);
		else if (strcmp(line, "SigIgn") == 0)
			s.sig_ign = strtoull(v, NULL, 16);
		else if (strcmp(line, "SigCgt") == 0)
			s.sig_cgt = strtoull(v, NULL, 16);
		else if (strcmp(line, "CapInh") == 0)
			s.cap_inh = strtoull(v, NULL, 16);
		else if (strcmp(line, "CapPrm") == 0)
			s.cap_prm = strtoull(v, NULL, 16);
		else if (strcmp(line, "CapEff") == 0)
			s.cap_eff = strtoull(v, NULL, 16);
		else if (strcmp(line, "CapBnd") == 0)
			s.cap_bnd = strtoull(v, NULL, 16);
		else if (strcmp(line, "CapAmb") == 0)
			s.cap_amb = strtoull(v, NULL, 16);
		else if (strcmp(line, "Groups") == 0) {
			char *p = v, *end;

			for (;;) {
				unsigned long g;
				uint32_t *ng;

				errno = 0;
				g = strtoul(p, &end, 10);
				if (end == p || errno)
					break;
				ng = reallocarray(s.groups, s.ngroups + 1, sizeof(*ng));
				if (!ng) {
					r = -ENOMEM;
					goto out;
				}
				s.groups = ng;
				s.groups[s.ngroups++] = (uint32_t)g;
				p = end;
			}
		}
		if (r < 0)
			goto out;
	}
	r = proc_read_stat(pid, &st);
	if (r < 0)
		goto out;
	s.kthread = (st.f[9] & PF_KTHREAD) != 0;
	*ret = s;
	s.groups = NULL;
out:
	proc_status_release(&s);
	buf_release(&b);
	return r;
}

int proc_read_stat(pid_t pid, struct proc_stat *ret)
{
	char path[64], buf[2048];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	char *p, *open_paren, *close_paren;
	int field = 3;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read_full(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -EINVAL;
	*ret = (struct proc_stat){ 0 };
	ret->f[1] = (uint64_t)pid;
	snprintf(ret->comm, sizeof(ret->comm), "%.*s",
		 (int)MIN((size_t)(close_paren - open_paren - 1), sizeof(ret->comm) - 1),
		 open_paren + 1);
	p = close_paren + 2;
	ret->f[3] = (uint64_t)(unsigned char)*p; /* state */
	p++;
	for (field = 4; field < (int)ARRAY_SIZE(ret->f) && *p; field++) {
		char *end;

		while (*p == ' ')
			p++;
		ret->f[field] = (uint64_t)strtoll(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	return 0;
}
