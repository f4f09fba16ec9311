// SPDX-License-Identifier: Apache-2.0
// The VM e2e's hand on the NIC (the test applies tables, never the agent): sets a device's
// RSS indirection table entry by entry, which `ethtool -X` has no syntax for (it fills
// tables only by `equal N` or `weight ...`).
//
//   rss_table DEV Q0 Q1 ... Q(N-1)   (exactly the device's N entries)
//
// SIOCETHTOOL ETHTOOL_GRXFHINDIR for the size, then ETHTOOL_SRXFHINDIR
// (include/uapi/linux/ethtool.h struct ethtool_rxfh_indir; net/ethtool/ioctl.c).
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ENTRIES 4096

int main(int argc, char **argv)
{
	static __u32 buf[2 + MAX_ENTRIES];
	struct ethtool_rxfh_indir *indir = (struct ethtool_rxfh_indir *)buf;
	struct ifreq ifr;
	int fd, given = argc - 2;
	char *end;

	if (argc < 3 || given > MAX_ENTRIES) {
		fprintf(stderr, "usage: rss_table DEV Q0 Q1 ... (at most %d entries)\n", MAX_ENTRIES);
		return 2;
	}
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	ifr.ifr_data = (void *)indir;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	indir->cmd = ETHTOOL_GRXFHINDIR;
	indir->size = 0; /* asks for the size */
	if (fd < 0 || ioctl(fd, SIOCETHTOOL, &ifr)) {
		fprintf(stderr, "rss_table %s: ETHTOOL_GRXFHINDIR: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (indir->size != (__u32)given) {
		fprintf(stderr, "rss_table %s: the table has %u entries, %d given\n", argv[1], indir->size, given);
		return 2;
	}
	for (int i = 0; i < given; i++) {
		unsigned long q = strtoul(argv[i + 2], &end, 10);
		if (*end || end == argv[i + 2]) {
			fprintf(stderr, "rss_table: entry %d: not a queue number: %s\n", i, argv[i + 2]);
			return 2;
		}
		indir->ring_index[i] = (__u32)q;
	}
	indir->cmd = ETHTOOL_SRXFHINDIR;
	if (ioctl(fd, SIOCETHTOOL, &ifr)) {
		fprintf(stderr, "rss_table %s: ETHTOOL_SRXFHINDIR: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("rss_table %s: %d entries set\n", argv[1], given);
	close(fd);
	return 0;
}
