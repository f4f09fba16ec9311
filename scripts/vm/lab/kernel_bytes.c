// SPDX-License-Identifier: Apache-2.0
// The VM e2e's look at a kernel variable: prints LEN bytes at a data symbol, read through
// /proc/kcore (an ELF core of the running kernel) at the address /proc/kallsyms gives.
// The test uses it for netdev_rss_key (net/core/ethtool.c), the per-boot random key
// netdev_rss_key_fill() copies into drivers; igb writes it to its RSSRK registers
// (igb_main.c igb_setup_mrqc) but reports no key to ethtool.
//
//   kernel_bytes SYMBOL LEN   -> "SYMBOL aa:bb:cc:..." on stdout
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long long symbol_address(const char *name)
{
	char line[512], sym[256], type;
	unsigned long long addr;
	FILE *f = fopen("/proc/kallsyms", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %255s", &addr, &type, sym) == 3 && !strcmp(sym, name)) {
			fclose(f);
			return addr;
		}
	if (f)
		fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char bytes[256];
	unsigned long long addr;
	Elf64_Ehdr eh;
	int fd, len;

	if (argc != 3 || (len = atoi(argv[2])) <= 0 || len > (int)sizeof(bytes)) {
		fprintf(stderr, "usage: kernel_bytes SYMBOL LEN (LEN <= %zu)\n", sizeof(bytes));
		return 2;
	}
	addr = symbol_address(argv[1]);
	if (!addr) {
		fprintf(stderr, "kernel_bytes: %s not in /proc/kallsyms (or its address hidden)\n", argv[1]);
		return 1;
	}
	fd = open("/proc/kcore", O_RDONLY);
	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		fprintf(stderr, "kernel_bytes: /proc/kcore is not readable as ELF\n");
		return 1;
	}
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * eh.e_phentsize) != sizeof(ph))
			break;
		if (ph.p_type != PT_LOAD || addr < ph.p_vaddr || addr + len > ph.p_vaddr + ph.p_memsz)
			continue;
		if (pread(fd, bytes, len, ph.p_offset + (addr - ph.p_vaddr)) != len)
			break;
		printf("%s ", argv[1]);
		for (int j = 0; j < len; j++)
			printf("%02x%s", bytes[j], j + 1 < len ? ":" : "\n");
		return 0;
	}
	fprintf(stderr, "kernel_bytes: %s at %llx is in no /proc/kcore segment\n", argv[1], addr);
	return 1;
}
