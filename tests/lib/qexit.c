// SPDX-License-Identifier: GPL-2.0-or-later
// qexit N: reports N to the host through qemu's isa-debug-exit device (I/O port 0xf4).
// qemu then exits with status (N << 1) | 1. Written as a tiny static program because
// busybox has no port I/O and /dev/port is missing on kernels without CONFIG_DEVPORT.
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>

int main(int argc, char **argv)
{
	unsigned int code = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 10) : 0;

	if (ioperm(0xf4, 4, 1)) {
		perror("qexit: ioperm");
		return 1;
	}
	outl(code, 0xf4);
	return 0;
}
