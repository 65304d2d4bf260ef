/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small rtnetlink client: just the requests the local cluster needs (make a
 * bridge and veth pairs, create a veth end in a node, set a master, bring a
 * link up, add an IPv4 address and a permanent neighbour entry), each sent
 * with NLM_F_ACK and answered by the kernel's error or acknowledgement. No
 * iproute2 involved.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdalign.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/cluster-int.h"
#include "base/banned.h"

#define NL_BUF 4096

struct nl_msg {
	alignas(struct nlmsghdr) char data[NL_BUF];
};

static struct nlmsghdr *msg_start(struct nl_msg *m, uint16_t type, uint16_t flags, const void *hdr,
				  size_t hdr_len)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->data;

	memset(m->data, 0, NLMSG_SPACE(hdr_len));
	h->nlmsg_len = (uint32_t)NLMSG_LENGTH(hdr_len);
	h->nlmsg_type = type;
	h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
	memcpy(NLMSG_DATA(h), hdr, hdr_len);
	return h;
}

/* Append an attribute; returns it (for nesting) or NULL when it does not fit,
 * which the fixed-size requests here never hit. */
static struct rtattr *attr_put(struct nlmsghdr *h, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(h->nlmsg_len);
	struct rtattr *a;

	if (off + RTA_SPACE(len) > NL_BUF)
		return NULL;
	a = (struct rtattr *)((char *)h + off);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = (uint32_t)(off + RTA_ALIGN(a->rta_len));
	return a;
}

static void nest_end(struct nlmsghdr *h, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)h + h->nlmsg_len - (char *)nest);
}

/* Send one request and wait for its answer. On RTM_GET* requests the reply
 * (up to reply_len bytes of the first message's payload) goes to reply. */
static int nl_talk(int nl, struct nlmsghdr *h, void *reply, size_t reply_len)
{
	static uint32_t seq;
	struct nl_msg in;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;

	h->nlmsg_seq = ++seq;
	do
		n = sendto(nl, h, h->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (;;) {
		struct nlmsghdr *r;
		size_t left;

		n = recv(nl, in.data, sizeof(in.data), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		left = (size_t)n;
		for (r = (struct nlmsghdr *)in.data; NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
			if (r->nlmsg_seq != h->nlmsg_seq)
				continue;
			if (r->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(r);

				if (r->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EPROTO;
				return e->error;
			}
			if (reply) {
				size_t plen = r->nlmsg_len - NLMSG_LENGTH(0);

				memcpy(reply, NLMSG_DATA(r), MIN(plen, reply_len));
				reply = NULL;
			}
		}
	}
}

int cl_nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int cl_nl_open_in(int nsfd, int back_nsfd)
{
	int fd;

	if (setns(nsfd, CLONE_NEWNET) < 0)
		return -errno;
	fd = cl_nl_open();
	if (setns(back_nsfd, CLONE_NEWNET) < 0) {
		/* Stuck in the wrong namespace: nothing after this could be trusted. */
		safe_close(fd);
		return -errno;
	}
	return fd;
}

int cl_nl_link_index(int nl, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC }, reply = { 0 };
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h = msg_start(&m, RTM_GETLINK, 0, &ifi, sizeof(ifi));
	int r;

	if (!attr_put(h, IFLA_IFNAME, name, strlen(name) + 1))
		return -ENAMETOOLONG;
	r = nl_talk(nl, h, &reply, sizeof(reply));
	if (r < 0)
		return r;
	return reply.ifi_index > 0 ? reply.ifi_index : -ENODEV;
}

int cl_nl_bridge_add(int nl, const char *name)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h =
		msg_start(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	struct rtattr *info;

	if (!attr_put(h, IFLA_IFNAME, name, strlen(name) + 1))
		return -ENAMETOOLONG;
	info = attr_put(h, IFLA_LINKINFO, NULL, 0);
	if (!info || !attr_put(h, IFLA_INFO_KIND, "bridge", sizeof("bridge")))
		return -ENOBUFS;
	nest_end(h, info);
	return nl_talk(nl, h, NULL, 0);
}

int cl_nl_veth_add(int nl, const char *name, const char *peer_name, int peer_nsfd,
		   const uint8_t peer_mac[6])
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	uint32_t fd = (uint32_t)peer_nsfd;
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h =
		msg_start(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	struct rtattr *info, *data, *peer;

	if (!attr_put(h, IFLA_IFNAME, name, strlen(name) + 1))
		return -ENAMETOOLONG;
	info = attr_put(h, IFLA_LINKINFO, NULL, 0);
	if (!info || !attr_put(h, IFLA_INFO_KIND, "veth", sizeof("veth")))
		return -ENOBUFS;
	data = attr_put(h, IFLA_INFO_DATA, NULL, 0);
	/* VETH_INFO_PEER holds a struct ifinfomsg, then the peer's attributes. */
	peer = data ? attr_put(h, VETH_INFO_PEER, &ifi, sizeof(ifi)) : NULL;
	if (!peer || !attr_put(h, IFLA_IFNAME, peer_name, strlen(peer_name) + 1) ||
	    !attr_put(h, IFLA_NET_NS_FD, &fd, sizeof(fd)) ||
	    (peer_mac && !attr_put(h, IFLA_ADDRESS, peer_mac, 6)))
		return -ENOBUFS;
	nest_end(h, peer);
	nest_end(h, data);
	nest_end(h, info);
	return nl_talk(nl, h, NULL, 0);
}

int cl_nl_link_up(int nl, int ifindex, int master_ifindex)
{
	struct ifinfomsg ifi = {
		.ifi_family = AF_UNSPEC,
		.ifi_index = ifindex,
		.ifi_flags = IFF_UP,
		.ifi_change = IFF_UP,
	};
	uint32_t master = (uint32_t)master_ifindex;
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h = msg_start(&m, RTM_NEWLINK, 0, &ifi, sizeof(ifi));

	if (master_ifindex > 0 && !attr_put(h, IFLA_MASTER, &master, sizeof(master)))
		return -ENOBUFS;
	return nl_talk(nl, h, NULL, 0);
}

int cl_nl_addr_add(int nl, int ifindex, struct in_addr addr, unsigned prefixlen)
{
	struct ifaddrmsg ifa = {
		.ifa_family = AF_INET,
		.ifa_prefixlen = (unsigned char)prefixlen,
		.ifa_scope = RT_SCOPE_UNIVERSE,
		.ifa_index = (unsigned)ifindex,
	};
	struct in_addr brd = addr;
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h;

	if (prefixlen > 32)
		return -EINVAL;
	if (prefixlen < 32)
		brd.s_addr = htonl(ntohl(addr.s_addr) | (0xffffffffu >> prefixlen));
	h = msg_start(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
	if (!attr_put(h, IFA_LOCAL, &addr, sizeof(addr)) ||
	    !attr_put(h, IFA_ADDRESS, &addr, sizeof(addr)) ||
	    !attr_put(h, IFA_BROADCAST, &brd, sizeof(brd)))
		return -ENOBUFS;
	return nl_talk(nl, h, NULL, 0);
}

int cl_nl_neigh_add(int nl, int ifindex, struct in_addr addr, const uint8_t mac[6])
{
	struct ndmsg nd = {
		.ndm_family = AF_INET,
		.ndm_ifindex = ifindex,
		.ndm_state = NUD_PERMANENT,
	};
	struct nl_msg m = { { 0 } };
	struct nlmsghdr *h = msg_start(&m, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, &nd,
				       sizeof(nd));

	if (!attr_put(h, NDA_DST, &addr, sizeof(addr)) || !attr_put(h, NDA_LLADDR, mac, 6))
		return -ENOBUFS;
	return nl_talk(nl, h, NULL, 0);
}
