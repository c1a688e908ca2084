#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HDR_BYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define A_BYTES   crypto_secretstream_xchacha20poly1305_ABYTES
#define TAG_MSG   crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_FINAL crypto_secretstream_xchacha20poly1305_TAG_FINAL

/* crypto_kdf subkey ids: one key per direction. */
enum { KDF_TO_DEST = 1, KDF_TO_SOURCE = 2 };
static const char kdf_context[crypto_kdf_CONTEXTBYTES] = { 'k', 'v', 'm', 'b', 'o', 'x', 'm', 'g' };

void chan_init_plain(struct chan *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void chan_free(struct chan *c)
{
	free(c->out);
	free(c->in);
	free(c->wire);
	c->out = c->in = c->wire = NULL;
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	c->in_len = c->in_off = c->out_len = 0;
}

static int chan_alloc(struct chan *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->secure = true;
	c->out = malloc(CHAN_MSG);
	c->in = malloc(CHAN_MSG);
	c->wire = malloc(4 + CHAN_MSG + A_BYTES);
	if (!c->out || !c->in || !c->wire) {
		chan_free(c);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int raw_read(const struct chan *c, void *p, size_t n)
{
	return c->read_fn ? c->read_fn(c->read_ctx, c->fd, p, n) : read_all(c->fd, p, n);
}

/* Seal len bytes of plaintext as one message and send it. */
static int send_msg(struct chan *c, const uint8_t *p, size_t len, uint8_t tag)
{
	unsigned long long clen;

	put_le32(c->wire, (uint32_t)(len + A_BYTES));
	if (crypto_secretstream_xchacha20poly1305_push(&c->tx, c->wire + 4, &clen, p, len, c->wire, 4, tag) <
	    0) {
		errno = EINVAL;
		return -1;
	}
	return write_all(c->fd, c->wire, 4 + (size_t)clen);
}

/* Receive and open the next message into c->in. */
static int recv_msg(struct chan *c)
{
	unsigned long long mlen;
	uint32_t clen;
	uint8_t tag;

	if (c->ended) {
		errno = EPROTO;
		return -1;
	}
	if (raw_read(c, c->wire, 4) < 0)
		return -1;
	clen = get_le32(c->wire);
	if (clen < A_BYTES || clen > CHAN_MSG + A_BYTES) {
		c->auth_failed = true;
		errno = EBADMSG;
		return -1;
	}
	if (raw_read(c, c->wire + 4, clen) < 0)
		return -1;
	if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, c->in, &mlen, &tag, c->wire + 4, clen, c->wire,
						       4) < 0 ||
	    (tag != TAG_MSG && tag != TAG_FINAL)) {
		c->auth_failed = true;
		errno = EBADMSG;
		return -1;
	}
	c->in_len = (size_t)mlen;
	c->in_off = 0;
	c->ended = tag == TAG_FINAL;
	return 0;
}

/* Both sides: this direction's stream (its header sent), the other's (its header read), then
 * each proves it holds the key by sealing the other's header. */
static int handshake(struct chan *c, const uint8_t key[KEY_BYTES], bool source)
{
	uint8_t k_tx[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t k_rx[crypto_secretstream_xchacha20poly1305_KEYBYTES];
	uint8_t h_tx[HDR_BYTES], h_rx[HDR_BYTES], echo[HDR_BYTES];
	int ret = -1;

	crypto_kdf_derive_from_key(k_tx, sizeof(k_tx), source ? KDF_TO_DEST : KDF_TO_SOURCE, kdf_context,
				   key);
	crypto_kdf_derive_from_key(k_rx, sizeof(k_rx), source ? KDF_TO_SOURCE : KDF_TO_DEST, kdf_context,
				   key);
	crypto_secretstream_xchacha20poly1305_init_push(&c->tx, h_tx, k_tx);
	if (source) {
		if (write_all(c->fd, CHAN_MAGIC, 8) < 0 || write_all(c->fd, h_tx, HDR_BYTES) < 0 ||
		    raw_read(c, h_rx, HDR_BYTES) < 0)
			goto out;
	} else {
		if (raw_read(c, h_rx, HDR_BYTES) < 0 || write_all(c->fd, h_tx, HDR_BYTES) < 0)
			goto out;
	}
	if (crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, h_rx, k_rx) < 0) {
		c->auth_failed = true;
		errno = EBADMSG;
		goto out;
	}
	/* The source proves itself first: a destination never answers a stranger's stream. */
	if (source && send_msg(c, h_rx, HDR_BYTES, TAG_MSG) < 0)
		goto out;
	if (chan_read(c, echo, HDR_BYTES) < 0)
		goto out;
	if (c->in_off != c->in_len || c->ended || sodium_memcmp(echo, h_tx, HDR_BYTES) != 0) {
		c->auth_failed = true;
		errno = EBADMSG;
		goto out;
	}
	if (!source && send_msg(c, h_rx, HDR_BYTES, TAG_MSG) < 0)
		goto out;
	ret = 0;
out:
	sodium_memzero(k_tx, sizeof(k_tx));
	sodium_memzero(k_rx, sizeof(k_rx));
	if (ret < 0) {
		int e = errno;
		bool failed = c->auth_failed;

		chan_free(c);
		c->auth_failed = failed;
		errno = e;
	}
	return ret;
}

int chan_connect(struct chan *c, int fd, const uint8_t key[KEY_BYTES])
{
	if (chan_alloc(c, fd) < 0)
		return -1;
	return handshake(c, key, true);
}

int chan_accept(struct chan *c, int fd, const uint8_t key[KEY_BYTES],
		int (*read_fn)(void *ctx, int fd, void *p, size_t n), void *ctx)
{
	if (chan_alloc(c, fd) < 0)
		return -1;
	c->read_fn = read_fn;
	c->read_ctx = ctx;
	return handshake(c, key, false);
}

int chan_write(struct chan *c, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (!c->secure)
		return write_all(c->fd, p, n);
	while (n) {
		size_t k = CHAN_MSG - c->out_len < n ? CHAN_MSG - c->out_len : n;

		memcpy(c->out + c->out_len, b, k);
		c->out_len += k;
		b += k;
		n -= k;
		if (c->out_len == CHAN_MSG && chan_flush(c, false) < 0)
			return -1;
	}
	return 0;
}

int chan_flush(struct chan *c, bool final)
{
	int ret;

	if (!c->secure || (!c->out_len && !final))
		return 0;
	ret = send_msg(c, c->out, c->out_len, final ? TAG_FINAL : TAG_MSG);
	c->out_len = 0;
	return ret;
}

int chan_read(struct chan *c, void *p, size_t n)
{
	uint8_t *b = p;

	if (!c->secure)
		return raw_read(c, p, n);
	while (n) {
		size_t k;

		if (c->in_off == c->in_len && recv_msg(c) < 0)
			return -1;
		k = c->in_len - c->in_off < n ? c->in_len - c->in_off : n;
		memcpy(b, c->in + c->in_off, k);
		c->in_off += k;
		b += k;
		n -= k;
	}
	return 0;
}

bool chan_at_end(const struct chan *c)
{
	return !c->secure || (c->ended && c->in_off == c->in_len);
}
