#include "ser.h"

#include <stdlib.h>
#include <string.h>

void ser_writer_init(struct ser_writer *w)
{
	memset(w, 0, sizeof(*w));
}

void ser_writer_free(struct ser_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void ser_put_bytes(struct ser_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > SIZE_MAX - w->len) {
		w->err = true;
		return;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *nb;

		while (cap < w->len + n) {
			if (cap > SIZE_MAX / 2) {
				w->err = true;
				return;
			}
			cap *= 2;
		}
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->err = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void ser_put_u8(struct ser_writer *w, uint8_t v)
{
	ser_put_bytes(w, &v, 1);
}

void ser_put_u16(struct ser_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	ser_put_bytes(w, b, 2);
}

void ser_put_u32(struct ser_writer *w, uint32_t v)
{
	ser_put_u16(w, (uint16_t)v);
	ser_put_u16(w, (uint16_t)(v >> 16));
}

void ser_put_u64(struct ser_writer *w, uint64_t v)
{
	ser_put_u32(w, (uint32_t)v);
	ser_put_u32(w, (uint32_t)(v >> 32));
}

void ser_reader_init(struct ser_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->err = false;
}

void ser_get_bytes(struct ser_reader *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = true;
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->buf + r->off, n);
	r->off += n;
}

uint8_t ser_get_u8(struct ser_reader *r)
{
	uint8_t v;

	ser_get_bytes(r, &v, 1);
	return v;
}

uint16_t ser_get_u16(struct ser_reader *r)
{
	uint8_t b[2];

	ser_get_bytes(r, b, 2);
	return (uint16_t)(b[0] | b[1] << 8);
}

uint32_t ser_get_u32(struct ser_reader *r)
{
	uint32_t lo = ser_get_u16(r);

	return lo | (uint32_t)ser_get_u16(r) << 16;
}

uint64_t ser_get_u64(struct ser_reader *r)
{
	uint64_t lo = ser_get_u32(r);

	return lo | (uint64_t)ser_get_u32(r) << 32;
}

bool ser_reader_done(const struct ser_reader *r)
{
	return !r->err && r->off == r->len;
}

void ser_put_str(struct ser_writer *w, const char *s)
{
	if (!s) {
		ser_put_u32(w, UINT32_MAX);
		return;
	}
	ser_put_u32(w, (uint32_t)strlen(s));
	ser_put_bytes(w, s, strlen(s));
}

char *ser_get_str(struct ser_reader *r, size_t max)
{
	uint32_t len = ser_get_u32(r);
	char *s;

	if (r->err || len == UINT32_MAX)
		return NULL;
	if (len > max || len > r->len - r->off) {
		r->err = true;
		return NULL;
	}
	s = malloc(len + 1u);
	if (!s) {
		r->err = true;
		return NULL;
	}
	ser_get_bytes(r, s, len);
	s[len] = '\0';
	if (strlen(s) != len) {
		free(s);
		r->err = true; /* an embedded NUL */
		return NULL;
	}
	return s;
}
