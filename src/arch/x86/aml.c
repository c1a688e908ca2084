#include "aml.h"

#include <string.h>

#include "core/util.h"

/* Opcodes from the ACPI spec, section 20 (AML grammar). */
enum {
	AML_ZERO = 0x00,
	AML_ONE = 0x01,
	AML_NAME = 0x08,
	AML_BYTE = 0x0a,
	AML_WORD = 0x0b,
	AML_DWORD = 0x0c,
	AML_QWORD = 0x0e,
	AML_SCOPE = 0x10,
	AML_BUFFER = 0x11,
	AML_PACKAGE = 0x12,
	AML_EXT = 0x5b,
	AML_EXT_DEVICE = 0x82,
	AML_ROOT = 0x5c,
	AML_DUAL = 0x2e,
	AML_MULTI = 0x2f,
};

/* PkgLength is at most 4 bytes; we reserve that much and shrink on close. */
#define PKGLEN_MAX 4

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err || n > a->cap - a->len) {
		a->err = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void emit_le(struct aml *a, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		aml_byte(a, (uint8_t)(v >> (8 * i)));
}

static bool name_char_ok(char c, bool first)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9');
}

/* Append one NameSeg from s[0..n), padded with '_' to four characters. */
static void name_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = { '_', '_', '_', '_' };

	if (n == 0 || n > 4) {
		a->err = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!name_char_ok(s[i], i == 0)) {
			a->err = true;
			return;
		}
		seg[i] = s[i];
	}
	aml_bytes(a, seg, 4);
}

void aml_name(struct aml *a, const char *path)
{
	size_t nsegs = 1;

	if (*path == '\\') {
		aml_byte(a, AML_ROOT);
		path++;
	}
	if (*path == '\0') {
		aml_byte(a, AML_ZERO); /* NullName: the root itself */
		return;
	}
	for (const char *p = path; *p; p++)
		nsegs += *p == '.';
	if (nsegs == 2) {
		aml_byte(a, AML_DUAL);
	} else if (nsegs > 2) {
		if (nsegs > 255) {
			a->err = true;
			return;
		}
		aml_byte(a, AML_MULTI);
		aml_byte(a, (uint8_t)nsegs);
	}
	while (*path) {
		size_t n = strcspn(path, ".");

		name_seg(a, path, n);
		path += n;
		if (*path == '.')
			path++;
	}
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO);
	} else if (v == 1) {
		aml_byte(a, AML_ONE);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE);
		emit_le(a, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD);
		emit_le(a, v, 2);
	} else if (v <= 0xffffffffULL) {
		aml_byte(a, AML_DWORD);
		emit_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD);
		emit_le(a, v, 8);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint32_t aml_eisaid_value(const char *id)
{
	uint8_t b[4];
	uint16_t vendor;

	/* Three 5-bit letters ('A' = 1) then four hex digits, stored big-endian. */
	vendor = (uint16_t)(((id[0] - '@') & 0x1f) << 10 | ((id[1] - '@') & 0x1f) << 5 |
			    ((id[2] - '@') & 0x1f));
	b[0] = vendor >> 8;
	b[1] = vendor & 0xff;
	b[2] = (uint8_t)(hexval(id[3]) << 4 | hexval(id[4]));
	b[3] = (uint8_t)(hexval(id[5]) << 4 | hexval(id[6]));
	return get_le32(b);
}

void aml_eisaid(struct aml *a, const char *id)
{
	if (strlen(id) != 7) {
		a->err = true;
		return;
	}
	for (int i = 0; i < 7; i++) {
		if (i < 3 ? !(id[i] >= 'A' && id[i] <= 'Z') : hexval(id[i]) < 0) {
			a->err = true;
			return;
		}
	}
	aml_byte(a, AML_DWORD);
	emit_le(a, aml_eisaid_value(id), 4);
}

void aml_name_integer(struct aml *a, const char *name, uint64_t v)
{
	aml_byte(a, AML_NAME);
	aml_name(a, name);
	aml_integer(a, v);
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_byte(a, AML_NAME);
	aml_name(a, name);
	aml_eisaid(a, id);
}

static void pkg_open(struct aml *a)
{
	if (a->depth >= AML_MAX_DEPTH) {
		a->err = true;
		return;
	}
	a->open[a->depth++] = a->len;
	emit_le(a, 0, PKGLEN_MAX);
}

void aml_end(struct aml *a)
{
	size_t start, body, total;
	int n;

	if (a->depth <= 0) {
		a->err = true;
		return;
	}
	start = a->open[--a->depth];
	if (a->err)
		return;
	body = a->len - start - PKGLEN_MAX;
	/* PkgLength counts its own bytes: 1 byte up to 63, then 1-3 extra bytes of 8 bits each
	 * above the lead byte's low nibble. */
	if (body + 1 < 0x40)
		n = 1;
	else if (body + 2 < 0x1000)
		n = 2;
	else if (body + 3 < 0x100000)
		n = 3;
	else if (body + 4 < 0x10000000)
		n = 4;
	else {
		a->err = true;
		return;
	}
	total = body + (size_t)n;
	if (n == 1) {
		a->buf[start] = (uint8_t)total;
	} else {
		a->buf[start] = (uint8_t)((n - 1) << 6 | (total & 0xf));
		for (int i = 1; i < n; i++)
			a->buf[start + (size_t)i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(a->buf + start + n, a->buf + start + PKGLEN_MAX, body);
	a->len -= (size_t)(PKGLEN_MAX - n);
}

void aml_name_buffer(struct aml *a, const char *name, const uint8_t *data, size_t n)
{
	aml_byte(a, AML_NAME);
	aml_name(a, name);
	aml_byte(a, AML_BUFFER);
	pkg_open(a);
	aml_integer(a, n);
	aml_bytes(a, data, n);
	aml_end(a);
}

void aml_scope_begin(struct aml *a, const char *path)
{
	aml_byte(a, AML_SCOPE);
	pkg_open(a);
	aml_name(a, path);
}

void aml_device_begin(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT);
	aml_byte(a, AML_EXT_DEVICE);
	pkg_open(a);
	aml_name(a, name);
}

void aml_package_begin(struct aml *a, uint8_t nelems)
{
	aml_byte(a, AML_PACKAGE);
	pkg_open(a);
	aml_byte(a, nelems);
}

void aml_name_package_begin(struct aml *a, const char *name, uint8_t nelems)
{
	aml_byte(a, AML_NAME);
	aml_name(a, name);
	aml_package_begin(a, nelems);
}

bool aml_ok(const struct aml *a)
{
	return !a->err && a->depth == 0;
}

/* Resource descriptors: ACPI spec section 6.4. */
void aml_res_io(struct aml *r, uint16_t base, uint8_t len)
{
	aml_byte(r, 0x47);   /* small item: I/O port, 7 bytes */
	aml_byte(r, 0x01);   /* 16-bit decode */
	emit_le(r, base, 2); /* min */
	emit_le(r, base, 2); /* max */
	aml_byte(r, 0x01);   /* alignment */
	aml_byte(r, len);
}

void aml_res_irq(struct aml *r, unsigned irq)
{
	aml_byte(r, 0x22); /* small item: IRQ, 2-byte mask: edge, active high */
	emit_le(r, irq < 16 ? 1u << irq : 0, 2);
}

/* Word/DWord/QWord address space descriptors share a layout: tag, length, resource type,
 * general flags (MinFixed|MaxFixed, producer), type-specific flags, then granularity, min,
 * max, translation, length, each `w` bytes wide. */
static void res_addr(struct aml *r, uint8_t tag, int w, uint8_t type, uint8_t tflags, uint64_t min,
		     uint64_t max)
{
	aml_byte(r, tag);
	emit_le(r, 3 + 5 * (uint64_t)w, 2);
	aml_byte(r, type);
	aml_byte(r, 0x0c);
	aml_byte(r, tflags);
	emit_le(r, 0, w);
	emit_le(r, min, w);
	emit_le(r, max, w);
	emit_le(r, 0, w);
	emit_le(r, max - min + 1, w);
}

void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max)
{
	res_addr(r, 0x88, 2, 2, 0, min, max);
}

void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max)
{
	res_addr(r, 0x88, 2, 1, 0x03 /* ISA and non-ISA ranges */, min, max);
}

void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max)
{
	res_addr(r, 0x87, 4, 0, 0x01 /* read-write, non-cacheable */, min, max);
}

void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max)
{
	res_addr(r, 0x8a, 8, 0, 0x01, min, max);
}

void aml_res_end(struct aml *r)
{
	aml_byte(r, 0x79); /* end tag; checksum 0 means "not checked" */
	aml_byte(r, 0x00);
}
