/* inputfile.c - the user's input files that kvmbox reads whole (a kernel, an initrd). */
#include "inputfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int input_file_read(const char *what, const char *path, uint64_t limit, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd;

	/* stat first: a FIFO or a device given by mistake is refused without being opened (a
	 * FIFO's open blocks, a device's may act). O_NONBLOCK and fstat cover a path changed in
	 * between; O_NONBLOCK changes nothing for a regular file. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		log_error("%s %s: not a regular file; give the path of a %s file", what, path, what);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		log_error("%s %s: %s; give the path of a readable %s file", what, path, strerror(errno),
			  what);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error("%s %s: not a regular file; give the path of a %s file", what, path, what);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > limit) {
		log_error("%s %s: %llu MiB does not fit in %llu MiB of guest RAM; give more --memory", what,
			  path, (unsigned long long)(st.st_size >> 20), (unsigned long long)(limit >> 20));
		close(fd);
		return -1;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		log_error("%s %s: out of memory reading it", what, path);
		close(fd);
		return -1;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("%s %s: read failed: %s; check the file", what, path,
				  n < 0 ? strerror(errno) : "file shrank");
			free(buf);
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = done;
	return 0;
}
