/* ser.h - little-endian serialisation of device and CPU state.
 *
 * A writer appends to a growable buffer; a reader consumes a byte range.
 * Both latch the first error (out of memory, short input) so callers can
 * serialise a whole structure and check once at the end. */
#ifndef KVMBOX_SER_H
#define KVMBOX_SER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ser_writer {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool err;
};

struct ser_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
	bool err;
};

void ser_writer_init(struct ser_writer *w);
void ser_writer_free(struct ser_writer *w);
void ser_put_bytes(struct ser_writer *w, const void *p, size_t n);
void ser_put_u8(struct ser_writer *w, uint8_t v);
void ser_put_u16(struct ser_writer *w, uint16_t v);
void ser_put_u32(struct ser_writer *w, uint32_t v);
void ser_put_u64(struct ser_writer *w, uint64_t v);
/* A string: u32 length (UINT32_MAX for NULL) and its bytes, no NUL. */
void ser_put_str(struct ser_writer *w, const char *s);

void ser_reader_init(struct ser_reader *r, const void *buf, size_t len);
void ser_get_bytes(struct ser_reader *r, void *p, size_t n);
uint8_t ser_get_u8(struct ser_reader *r);
uint16_t ser_get_u16(struct ser_reader *r);
uint32_t ser_get_u32(struct ser_reader *r);
uint64_t ser_get_u64(struct ser_reader *r);
/* A string written by ser_put_str, malloc'ed: NULL for the NULL marker, or when the input is
 * malformed (longer than max, past the end, an embedded NUL) or memory runs out, both of which
 * set r->err. */
char *ser_get_str(struct ser_reader *r, size_t max);
/* True when the reader consumed exactly its input without error. */
bool ser_reader_done(const struct ser_reader *r);

#endif
