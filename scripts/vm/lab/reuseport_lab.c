// SPDX-License-Identifier: Apache-2.0
// Ground truth for the VM e2e: a 4-socket UDP and a 4-socket TCP SO_REUSEPORT group on one
// address; counts what each socket received / accepted and prints the counts on SIGTERM.
//
//   reuseport_lab serve ADDR UDP_PORT TCP_PORT   (prints "lab ready", then counts)
//   reuseport_lab connect ADDR TCP_PORT N        (N TCP connections, each closed at once)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define GROUP 4

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int bound(int type, const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, rcvbuf = 8 << 20, fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
	if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    (type == SOCK_STREAM && listen(fd, 1024))) {
		perror("lab: socket");
		exit(1);
	}
	/* Room for the whole run: a slow TCG guest must not drop datagrams at
	 * the socket, so what each socket received is what the NIC delivered. */
	if (type == SOCK_DGRAM && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf))) {
		perror("lab: socket");
		exit(1);
	}
	return fd;
}

static unsigned long inode(int fd)
{
	struct stat st;
	return fstat(fd, &st) ? 0 : (unsigned long)st.st_ino;
}

static void print_counts(const char *proto, const int *fds, const unsigned long *counts)
{
	printf("lab %s counts", proto);
	for (int i = 0; i < GROUP; i++)
		printf(" %lu", counts[i]);
	printf(" inodes");
	for (int i = 0; i < GROUP; i++)
		printf(" %lu", inode(fds[i]));
	printf("\n");
}

static int serve(const char *addr, int udp_port, int tcp_port)
{
	struct pollfd pfd[2 * GROUP];
	unsigned long got[2 * GROUP] = { 0 };
	char buf[2048];

	for (int i = 0; i < GROUP; i++) {
		pfd[i] = (struct pollfd){ .fd = bound(SOCK_DGRAM, addr, udp_port), .events = POLLIN };
		pfd[GROUP + i] = (struct pollfd){ .fd = bound(SOCK_STREAM, addr, tcp_port), .events = POLLIN };
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	printf("lab ready\n");
	fflush(stdout);
	while (!stop) {
		if (poll(pfd, 2 * GROUP, 200) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2 * GROUP; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				int fd;
				if (i < GROUP) {
					if (recv(pfd[i].fd, buf, sizeof(buf), 0) < 0)
						break;
				} else {
					if ((fd = accept(pfd[i].fd, NULL, NULL)) < 0)
						break;
					close(fd);
				}
				got[i]++;
			}
		}
	}
	int fds[2 * GROUP];
	for (int i = 0; i < 2 * GROUP; i++)
		fds[i] = pfd[i].fd;
	print_counts("udp", fds, got);
	print_counts("tcp", fds + GROUP, got + GROUP);
	fflush(stdout);
	return 0;
}

static int connect_n(const char *addr, int port, int n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int ok = 0;
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return 1;
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			ok++;
		if (fd >= 0)
			close(fd);
	}
	printf("lab connected %d of %d\n", ok, n);
	return ok == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "serve"))
		return serve(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "connect"))
		return connect_n(argv[2], atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: %s serve ADDR UDP_PORT TCP_PORT | connect ADDR TCP_PORT N\n", argv[0]);
	return 2;
}
