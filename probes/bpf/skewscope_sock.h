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

/*
 * The same facts for BTF-enabled programs (tp_btf, fentry), whose kernel
 * pointers are typed: fields are read with plain loads that the verifier
 * checks against the kernel's BTF and the JIT guards against faults
 * (BPF_PROBE_MEM), about 1 ns each instead of one bpf_probe_read_kernel()
 * call (~15 ns) per field. Only valid where the pointers are BTF-typed.
 */

/* sock_inode() without helper calls: sk->sk_ino where the kernel caches it
 * (6.17+, one load on the sock's own cache lines), else through the file
 * (every socket userspace holds has one; file->f_inode is SOCK_INODE(sock)),
 * else the container_of path for kernel sockets without a file. */
static __always_inline __u64 sock_inode_btf(const struct sock *sk)
{
	struct socket *sock;
	struct file *file;

	if (bpf_core_field_exists(sk->sk_ino))
		return sk->sk_ino;
	sock = sk->sk_socket;
	if (!sock)
		return 0;
	file = sock->file;
	if (file)
		return file->f_inode->i_ino;
	return sock_inode(sk);
}

static __always_inline __u32 sock_netns_btf(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

static __always_inline __u32 dev_netns_btf(const struct net_device *dev)
{
	if (!dev)
		return 0;
	return dev->nd_net.net->ns.inum;
}

/*
 * One handler for both kinds of program. BTF-enabled programs (tp_btf,
 * fentry) get typed pointers and read fields with plain loads; kprobes get
 * the same arguments as plain integers (PT_REGS_PARMn), which the verifier
 * lets them read only through bpf_probe_read_kernel() (CO-RE relocated
 * here). KREAD picks one by `typed`, which must be a constant at every
 * inlined call site, so the other branch is never compiled into a program.
 */
#define KREAD(typed, ptr, field) ((typed) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline __u64 sock_inode_of(const struct sock *sk, const int typed)
{
	return typed ? sock_inode_btf(sk) : sock_inode(sk);
}

static __always_inline __u32 sock_netns_of(const struct sock *sk, const int typed)
{
	return typed ? sock_netns_btf(sk) : sock_netns(sk);
}

/* reuse->socks[index], or NULL when it cannot be read. socks[] is a
 * flexible array outside the typed struct, so it is read with
 * bpf_probe_read_kernel() from BTF-enabled programs too; a stale `reuse`
 * (RCU) yields a stale or NULL member, never a fault. */
static __always_inline struct sock *reuseport_slot(const struct sock_reuseport *reuse,
						   __u32 index)
{
	void *socks = (void *)reuse + bpf_core_field_offset(struct sock_reuseport, socks);
	struct sock *member = NULL;

	if (bpf_probe_read_kernel(&member, sizeof(member), socks + index * sizeof(struct sock *)))
		return NULL;
	return member;
}

#endif /* __SKEWSCOPE_SOCK_H */
