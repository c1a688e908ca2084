#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int hex_digit(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int key_file_load(const char *path, const char *option, uint8_t key[KEY_BYTES])
{
	uint8_t buf[2 * KEY_BYTES + 2];
	struct stat st;
	ssize_t got;
	size_t n = 0;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		log_error("%s %s: %s; give a key file (make one with: head -c 32 /dev/urandom > FILE)",
			  option, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("%s %s: not a regular file; give a key file (head -c 32 /dev/urandom > FILE)",
			  option, path);
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		log_error("%s %s: mode %04o lets other users at the key; chmod 600 %s", option, path,
			  (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	while (n < sizeof(buf)) {
		got = read(fd, buf + n, sizeof(buf) - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			log_error("%s %s: cannot read it: %s", option, path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n == 2 * KEY_BYTES + 1 && buf[n - 1] == '\n')
		n--;
	if (n == KEY_BYTES) {
		memcpy(key, buf, KEY_BYTES);
		ret = 0;
	} else if (n == 2 * KEY_BYTES) {
		ret = 0;
		for (size_t i = 0; i < KEY_BYTES && ret == 0; i++) {
			int hi = hex_digit(buf[2 * i]), lo = hex_digit(buf[2 * i + 1]);

			if (hi < 0 || lo < 0)
				ret = -1;
			else
				key[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	if (ret < 0)
		log_error("%s %s: not a key (32 bytes, or 64 hex digits); make one with: head -c 32 "
			  "/dev/urandom > %s",
			  option, path, path);
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return ret;
}

int vm_keys_load(struct vm_keys *k)
{
	if (k->migration_key_file) {
		if (key_file_load(k->migration_key_file, "--migration-key", k->migration_key) < 0)
			return -1;
		k->have_migration_key = true;
	}
	if (k->snapshot_key_file) {
		if (key_file_load(k->snapshot_key_file, "--snapshot-key", k->snapshot_key) < 0)
			return -1;
		k->have_snapshot_key = true;
	}
	return 0;
}
