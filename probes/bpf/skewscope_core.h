/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Minimal CO-RE header for the skewscope probes.
 *
 * Instead of a generated vmlinux.h (~3 MB), this declares only the kernel
 * types and fields the probes actually touch. Every record below is compiled
 * with preserve_access_index, so field accesses become CO-RE relocations that
 * libbpf/aya resolve against the running kernel's BTF (/sys/kernel/btf/vmlinux)
 * at load time: field order and layout here do not need to match any kernel.
 *
 * Rule for additions: add a field only when a probe reads it, and cite the
 * kernel version/commit when the field is renamed or optional (guard such
 * reads with bpf_core_field_exists()).
 */
#ifndef __SKEWSCOPE_CORE_H
#define __SKEWSCOPE_CORE_H

/* UAPI types (__u32, __u64, ...) and program context types
 * (struct bpf_raw_tracepoint_args, struct sk_reuseport_md, enum sk_action).
 */
#include <linux/types.h>
#include <linux/bpf.h>
/* struct pt_regs, the context of kprobe programs, for PT_REGS_PARMn
 * (bpf_tracing.h). The UAPI layout is the kernel's (register names differ:
 * rdi, not di); it stays outside preserve_access_index, since context
 * accesses are checked by offset, not relocated. */
#include <asm/ptrace.h>

typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;

/*
 * Softirq vector numbers: an anonymous enum in include/linux/interrupt.h, so
 * there is no named type to relocate with bpf_core_enum_value(). The values
 * have been stable since NET_TX/NET_RX became softirqs (v2.6); both the
 * irq:softirq_entry/exit tracepoints and /proc/softirqs use these indices.
 */
#define HI_SOFTIRQ 0
#define TIMER_SOFTIRQ 1
#define NET_TX_SOFTIRQ 2
#define NET_RX_SOFTIRQ 3
#define NR_SOFTIRQS 10

struct sock;
struct sk_buff;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/*
 * Kernel records read with CO-RE. Only the fields a probe reads are listed;
 * offsets come from the running kernel's BTF. Fields that live inside
 * anonymous unions/structs in the kernel (skc_num, sk_buff's dev/sk/
 * protocol/headers) are matched by name through those members.
 */

/* include/linux/ns_common.h */
struct ns_common {
	unsigned int inum;
};

/* include/net/net_namespace.h */
struct net {
	struct ns_common ns;
};

/* include/net/net_namespace.h: possible_net_t (a typedef of an anonymous
 * struct; named here so the header stays self-contained). */
typedef struct {
	struct net *net;
} possible_net_t;

/* include/linux/fs.h */
struct inode {
	unsigned long i_ino;
};

/* include/linux/fs.h. A socket's file is alloc_file_pseudo(SOCK_INODE(sock))
 * (net/socket.c sock_alloc_file), so f_inode is the socket's own inode. */
struct file {
	struct inode *f_inode;
};

/* include/linux/net.h. `file` is NULL for kernel sockets made without one
 * (sock_create_kern); its address is also used for container_of. */
struct socket {
	unsigned long state;
	struct file *file;
};

/* include/net/sock.h: struct socket_alloc, so that SOCK_INODE(sock) can be
 * computed the way sock_i_ino() does (what inet_diag reports as idiag_inode
 * and fstat(2) as st_ino). */
struct socket_alloc {
	struct socket socket;
	struct inode vfs_inode;
};

/* include/net/sock_reuseport.h */
struct sock_reuseport {
	__u16 num_socks;
	unsigned int reuseport_id;
	struct sock *socks[];
};

/* include/linux/skbuff.h */
struct sk_buff_head {
	struct sk_buff *next;
	__u32 qlen;
};

/* include/net/sock.h */
struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__u16 skc_num;
	possible_net_t skc_net;
};

/* include/net/sock.h. sk_protocol is a plain u16 since Linux 5.6 (commit
 * bf9765145b85 "sock: Make sk_protocol a 16-bit value"); before that it was
 * a bitfield, which these probes do not support (they need 6.x tracepoints
 * anyway). */
struct sock {
	struct sock_common __sk_common;
	struct sk_buff_head sk_receive_queue;
	__u16 sk_protocol;
	struct socket *sk_socket;
	struct sock_reuseport *sk_reuseport_cb;
	/* SOCK_INODE(sk_socket)->i_ino cached by sk_set_socket() since Linux
	 * 6.17 (commit 5d6b58c932ec "net: lockless sock_i_ino()"); read it
	 * behind bpf_core_field_exists(). */
	unsigned long sk_ino;
};

/* include/linux/udp.h: the queue udp_recvmsg() dequeues from first
 * (Linux 4.13, commit 2276f58ac589 "udp: use a separate rx queue for
 * packet reception"). */
struct udp_sock {
	struct sk_buff_head reader_queue;
};

/* include/linux/netdevice.h */
struct net_device {
	int ifindex;
	possible_net_t nd_net;
};

/* include/linux/netdevice.h. napi_id was under #ifdef
 * CONFIG_NET_RX_BUSY_POLL in older kernels: read it behind
 * bpf_core_field_exists(). */
struct napi_struct {
	struct net_device *dev;
	unsigned int napi_id;
};

/* include/linux/skbuff.h. `end` is an offset from `head` on 64-bit kernels
 * (NET_SKBUFF_DATA_USES_OFFSET); the probes only support 64-bit. */
struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	unsigned int data_len; /* bytes outside the linear area */
	__u16 queue_mapping;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned int tail; /* offset from head on 64-bit, like end */
	unsigned int end;
	unsigned char *head;
	unsigned char *data;
	/* The flow hash: the NIC's RSS hash as the driver stored it with
	 * skb_set_hash() (sw_hash 0), or a software hash (sw_hash 1,
	 * __skb_set_sw_hash), include/linux/skbuff.h. sw_hash is a bitfield:
	 * read it with BPF_CORE_READ_BITFIELD. */
	__u32 hash;
	__u8 sw_hash : 1;
};

/* include/linux/skbuff.h */
struct skb_shared_info {
	unsigned short gso_segs;
};

#pragma clang attribute pop

/*
 * Enums whose existence tells which tracepoint arguments a kernel passes
 * (checked with bpf_core_type_exists(); the enumerator here is a placeholder,
 * real values are resolved from the kernel's BTF in userspace):
 * - enum skb_drop_reason: skb:kfree_skb has carried `reason` since Linux 5.17
 *   (commit c504e5c2f964 "net: skb: introduce kfree_skb_reason()").
 * - enum sk_rst_reason: tcp:tcp_send_reset has carried `reason` since Linux
 *   6.10 (Jason Xing's "rstreason" series).
 */
enum skb_drop_reason {
	__SKEWSCOPE_SKB_DROP_REASON_PLACEHOLDER
};
enum sk_rst_reason {
	__SKEWSCOPE_SK_RST_REASON_PLACEHOLDER
};

#endif /* __SKEWSCOPE_CORE_H */
