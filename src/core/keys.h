/* keys.h - the pre-shared keys of --migration-key and --snapshot-key, read from files.
 *
 * A key file holds 32 random bytes, raw, or as 64 hexadecimal digits (a newline after them is
 * allowed): `head -c 32 /dev/urandom > key` makes one. The file must be a regular file that
 * only its owner can read or write (mode 0600 or 0400): a key that others can read protects
 * nothing. The keys are read once at start-up, before the sandbox closes the file system, and
 * are never saved in a snapshot, sent in a migration or shown by `info`. */
#ifndef KVMBOX_KEYS_H
#define KVMBOX_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#define KEY_BYTES 32

/* The key options of a VM (run, restore, run --incoming); paths as given. */
struct vm_keys {
	const char *migration_key_file; /* --migration-key FILE */
	const char *snapshot_key_file;  /* --snapshot-key FILE */
	bool insecure_migration;        /* --insecure-migration: TCP without a key */
	bool have_migration_key, have_snapshot_key;
	uint8_t migration_key[KEY_BYTES];
	uint8_t snapshot_key[KEY_BYTES];
};

/* Read the key file path (option names it in errors: "--migration-key") into key. 0, or -1
 * after printing one line (missing, not a regular file, readable or writable by others, not 32
 * bytes or 64 hex digits). */
int key_file_load(const char *path, const char *option, uint8_t key[KEY_BYTES]);
/* Read the key files k names. 0 or -1 (printed). */
int vm_keys_load(struct vm_keys *k);

#endif
