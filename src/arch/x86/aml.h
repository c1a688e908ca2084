/* aml.h - a tiny ACPI Machine Language encoder, just enough for kvmbox's DSDT.
 *
 * An encoder appends to a caller-owned fixed buffer and latches overflow, so a
 * whole table can be emitted and checked once at the end. Package-length
 * objects (Scope, Device, Package) are opened with a *_begin() call and closed
 * with aml_end(); the PkgLength prefix is sized when the object is closed. */
#ifndef KVMBOX_X86_AML_H
#define KVMBOX_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool err;                   /* overflow, bad name or unbalanced nesting */
	size_t open[AML_MAX_DEPTH]; /* offsets of the PkgLength placeholders */
	int depth;
};

/* Start encoding into buf[0..cap). */
void aml_init(struct aml *a, uint8_t *buf, size_t cap);
/* Append raw bytes / one byte. */
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_byte(struct aml *a, uint8_t v);
/* NameString: "\\_SB_.PCI0", "_S5_", "COM1"; segments shorter than 4 are padded with '_'. */
void aml_name(struct aml *a, const char *path);
/* Smallest integer encoding (ZeroOp, OneOp, Byte/Word/DWord/QWord prefix). */
void aml_integer(struct aml *a, uint64_t v);
/* Compressed EISA id ("PNP0A03") as a DWordConst. */
void aml_eisaid(struct aml *a, const char *id);
/* EISA id value as stored in memory (little-endian dword), e.g. for tests. */
uint32_t aml_eisaid_value(const char *id);
/* Name(name, <integer>) / Name(name, EisaId(id)) / Name(name, Buffer(){data}). */
void aml_name_integer(struct aml *a, const char *name, uint64_t v);
void aml_name_eisaid(struct aml *a, const char *name, const char *id);
void aml_name_buffer(struct aml *a, const char *name, const uint8_t *data, size_t n);
/* Open Scope(path) / Device(name) / Name(name, Package(n){ / Package(n){; close with aml_end(). */
void aml_scope_begin(struct aml *a, const char *path);
void aml_device_begin(struct aml *a, const char *name);
void aml_name_package_begin(struct aml *a, const char *name, uint8_t nelems);
void aml_package_begin(struct aml *a, uint8_t nelems);
void aml_end(struct aml *a);
/* True if the encoding is complete and consistent (no overflow, all objects closed). */
bool aml_ok(const struct aml *a);

/* Resource template items (append to a separate struct aml used as a byte buffer, then end with
 * aml_res_end() and hand it to aml_name_buffer()). Ranges are inclusive [min, max]. */
void aml_res_io(struct aml *r, uint16_t base, uint8_t len);
void aml_res_irq(struct aml *r, unsigned irq);
void aml_res_word_bus(struct aml *r, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *r, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *r, uint32_t min, uint32_t max);
void aml_res_qword_mem(struct aml *r, uint64_t min, uint64_t max);
void aml_res_end(struct aml *r);

#endif
