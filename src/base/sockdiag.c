/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/sockdiag.h"
#include "base/banned.h"

int sockdiag_unix(uint64_t ino, uint32_t *ret_type, uint64_t *ret_peer, uint32_t *ret_shut)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg = {
		.nlh = { .nlmsg_len = sizeof(msg), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST },
		.req = { .sdiag_family = AF_UNIX, .udiag_ino = (uint32_t)ino,
			 .udiag_show = UDIAG_SHOW_PEER,
			 .udiag_cookie = { ~0u, ~0u } },
	};
	char buf[8192];
	_cleanup_close_ int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	struct nlmsghdr *h;
	ssize_t n;

	if (s < 0)
		return -errno;
	if (send(s, &msg, sizeof(msg), 0) < 0)
		return -errno;
	n = recv(s, buf, sizeof(buf), 0);
	if (n < 0)
		return -errno;
	h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)n))
		return -EPROTO;
	if (h->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(h);

		return e->error ? e->error : -ENOENT;
	}
	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return -EPROTO;

	struct unix_diag_msg *m = NLMSG_DATA(h);
	struct rtattr *a = (struct rtattr *)(m + 1);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*m));

	*ret_type = m->udiag_type;
	*ret_peer = 0;
	*ret_shut = 0;
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == UNIX_DIAG_PEER && RTA_PAYLOAD(a) >= 4) {
			uint32_t v;

			memcpy(&v, RTA_DATA(a), sizeof(v));
			*ret_peer = v;
		} else if (a->rta_type == UNIX_DIAG_SHUTDOWN && RTA_PAYLOAD(a) >= 1)
			*ret_shut = *(uint8_t *)RTA_DATA(a);
	}
	return 0;
}
