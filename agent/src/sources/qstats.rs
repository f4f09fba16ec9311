//! Per-queue packets and bytes from the netdev generic-netlink family (qstats, Linux 6.9+).
