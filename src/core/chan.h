/* chan.h - the byte stream of a live migration: plain, or authenticated and encrypted with a
 * pre-shared key (core/keys.h) by libsodium's crypto_secretstream_xchacha20poly1305.
 *
 * Encrypted, each direction is a secretstream of its own, under a key derived from the
 * pre-shared one for that direction (crypto_kdf), so neither stream can be reflected as the
 * other:
 *
 *   source -> destination   "KVMBOXMC", the source stream's 24-byte header
 *   destination -> source   the destination stream's header
 *   source -> destination   a message holding the destination's header (fresh each time: a
 *                           recorded stream cannot be replayed to another destination)
 *   destination -> source   a message holding the source's header (nor an old answer to
 *                           another source)
 *
 * then the migration protocol, cut into messages of at most CHAN_MSG bytes, each on the wire as
 * u32 length (little endian) and the sealed message (the length is its additional data); the
 * last message of a direction is tagged FINAL. A message that does not authenticate (wrong key,
 * a changed, dropped, reordered or replayed message) is an error (EBADMSG, chan.auth_failed);
 * so is anything after the FINAL one. Plain, every call goes straight to the socket. */
#ifndef KVMBOX_CHAN_H
#define KVMBOX_CHAN_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"

#define CHAN_MAGIC "KVMBOXMC"
#define CHAN_MSG   (64u << 10)

struct chan {
	int fd;
	/* Reads from fd (read_all when NULL): the destination's keeps a deadline and a stop. */
	int (*read_fn)(void *ctx, int fd, void *p, size_t n);
	void *read_ctx; /* read_fn's first argument */
	bool secure;
	bool auth_failed; /* a message did not authenticate */
	bool ended;       /* the peer's FINAL message was read */
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	uint8_t *out; /* plaintext not yet sent (CHAN_MSG) */
	size_t out_len;
	uint8_t *in; /* plaintext received, not yet read (CHAN_MSG) */
	size_t in_len, in_off;
	uint8_t *wire; /* one sealed message */
};

/* A plain channel on fd. */
void chan_init_plain(struct chan *c, int fd);
/* The source's side of the encrypted handshake on a connected fd: sends CHAN_MAGIC first.
 * 0, or -1 with errno (EBADMSG and c->auth_failed: the destination's answer did not
 * authenticate). chan_free in both cases. */
int chan_connect(struct chan *c, int fd, const uint8_t key[KEY_BYTES]);
/* The destination's side, once it has read CHAN_MAGIC from fd, reading with read_fn(ctx, ...)
 * (NULL: read_all). As chan_connect. */
int chan_accept(struct chan *c, int fd, const uint8_t key[KEY_BYTES],
		int (*read_fn)(void *ctx, int fd, void *p, size_t n), void *ctx);
/* Send n bytes (encrypted: buffered into messages). 0, or -1 with errno. */
int chan_write(struct chan *c, const void *p, size_t n);
/* Encrypted: send what is buffered; with final, as the direction's FINAL message (then no
 * more may be written). Plain: nothing to do. 0, or -1 with errno. */
int chan_flush(struct chan *c, bool final);
/* Read exactly n bytes. 0, or -1 with errno (ECONNRESET: the stream ended first; EBADMSG: a
 * message did not authenticate; EPROTO: data past the FINAL message). */
int chan_read(struct chan *c, void *p, size_t n);
/* Has the peer's stream ended cleanly here: its FINAL message read and consumed? Always true
 * for a plain channel, which has no end marker. */
bool chan_at_end(const struct chan *c);
/* Free the buffers and wipe the keys (not the fd, which is the caller's). */
void chan_free(struct chan *c);

#endif
