/* bytes.c - small binary-file operations for the snapshot tests.
 *
 *   bytes flip FILE OFFSET           xor the byte at OFFSET with 0x55 (in place)
 *   bytes nonzero-page FILE FROM TO  print the offset of the first 4096-byte page
 *                                    (page-aligned, FROM <= offset, offset + 4096 <= TO)
 *                                    holding a non-zero byte; holes are skipped
 *                                    (SEEK_DATA). Exit 1 if there is none.
 * Errors: one line on stderr, exit 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static int parse_off(const char *s, off_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "bytes: bad offset '%s'\n", s);
		return -1;
	}
	*out = (off_t)v;
	return 0;
}

static int flip(const char *path, off_t off)
{
	unsigned char b;
	int fd = open(path, O_RDWR);

	if (fd < 0) {
		fprintf(stderr, "bytes: %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (pread(fd, &b, 1, off) != 1) {
		fprintf(stderr, "bytes: %s: no byte at offset %lld\n", path, (long long)off);
		close(fd);
		return 2;
	}
	b ^= 0x55;
	if (pwrite(fd, &b, 1, off) != 1 || close(fd) < 0) {
		fprintf(stderr, "bytes: %s: cannot write offset %lld: %s\n", path, (long long)off,
			strerror(errno));
		return 2;
	}
	return 0;
}

static int nonzero_page(const char *path, off_t from, off_t to)
{
	static unsigned char page[PAGE];
	int fd = open(path, O_RDONLY);
	off_t off = (from + PAGE - 1) / PAGE * PAGE;

	if (fd < 0) {
		fprintf(stderr, "bytes: %s: %s\n", path, strerror(errno));
		return 2;
	}
	while (off + PAGE <= to) {
		off_t d = lseek(fd, off, SEEK_DATA);

		if (d < 0)
			break; /* ENXIO: only a hole from here on */
		off = d - d % PAGE;
		if (off + PAGE > to)
			break;
		if (pread(fd, page, PAGE, off) != PAGE) {
			fprintf(stderr, "bytes: %s: short read at %lld\n", path, (long long)off);
			close(fd);
			return 2;
		}
		for (size_t i = 0; i < PAGE; i++) {
			if (page[i]) {
				printf("%lld\n", (long long)off);
				close(fd);
				return 0;
			}
		}
		off += PAGE;
	}
	close(fd);
	return 1;
}

int main(int argc, char **argv)
{
	off_t a, b;

	if (argc == 4 && !strcmp(argv[1], "flip")) {
		if (parse_off(argv[3], &a) < 0)
			return 2;
		return flip(argv[2], a);
	}
	if (argc == 5 && !strcmp(argv[1], "nonzero-page")) {
		if (parse_off(argv[3], &a) < 0 || parse_off(argv[4], &b) < 0)
			return 2;
		return nonzero_page(argv[2], a, b);
	}
	fprintf(stderr, "usage: bytes flip FILE OFFSET | bytes nonzero-page FILE FROM TO\n");
	return 2;
}
