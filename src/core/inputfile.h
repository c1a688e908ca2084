/* inputfile.h - the user's input files that kvmbox reads whole (a kernel, an initrd). */
#ifndef KVMBOX_INPUTFILE_H
#define KVMBOX_INPUTFILE_H

#include <stddef.h>
#include <stdint.h>

/* Read the regular file `path` of at most `limit` bytes into a new buffer (*out, *len; free
 * it). `what` names it in the one-line errors ("kernel", "initrd"): a FIFO or a device is
 * refused without being opened, a file larger than `limit` is refused. -1 on error. */
int input_file_read(const char *what, const char *path, uint64_t limit, uint8_t **out, size_t *len);

#endif
