/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Socket and device facts several probes read the same way.
 * Include after skewscope_core.h and <bpf/bpf_core_read.h>.
 */
#ifndef __SKEWSCOPE_SOCK_H
#define __SKEWSCOPE_SOCK_H

/* Inode number of the socket behind `sk`, as sock_i_ino() computes it
 * (SOCK_INODE(sk->sk_socket), include/net/sock.h): the number
 * inet_diag/sock_diag report as idiag_inode and fstat(2) as st_ino.
 * 0 when the sock has no struct socket (kernel-internal or orphaned). */
static __always_inline __u64 sock_inode(const struct sock *sk)
{
	struct socket *sock = BPF_CORE_READ(sk, sk_socket);
	struct inode *inode;

	if (!sock)
		return 0;
	inode = (struct inode *)((void *)sock -
				 bpf_core_field_offset(struct socket_alloc, socket) +
				 bpf_core_field_offset(struct socket_alloc, vfs_inode));
	return BPF_CORE_READ(inode, i_ino);
}

/* Inode number of the network namespace of `sk` (what
 * /proc/PID/ns/net links to: "net:[inum]"). */
static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Inode number of the network namespace of `dev`; 0 for NULL. */
static __always_inline __u32 dev_netns(const struct net_device *dev)
{
	if (!dev)
		return 0;
	return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

#endif /* __SKEWSCOPE_SOCK_H */
