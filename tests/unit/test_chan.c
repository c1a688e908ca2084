/* The migration stream's channel (core/chan.c: libsodium's secretstream with a pre-shared key)
 * and the key files of --migration-key and --snapshot-key (core/keys.c). The handshake runs
 * over a socketpair with the destination on a thread; the data then goes through a file, so
 * the tests can change the bytes on the way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/chan.h"
#include "core/keys.h"
#include "fakes.h"

static uint8_t key_a[KEY_BYTES], key_b[KEY_BYTES];

struct dest_side {
	struct chan c;
	int fd;
	const uint8_t *key;
	int ret;
	bool auth_failed;
	char magic[8];
};

static void *dest_thread(void *arg)
{
	struct dest_side *d = arg;

	d->ret = -1;
	if (read_all(d->fd, d->magic, 8) < 0)
		return NULL;
	d->ret = chan_accept(&d->c, d->fd, d->key, NULL, NULL);
	d->auth_failed = d->c.auth_failed;
	/* Refused: hang up, as migrate_accept does. */
	if (d->ret < 0)
		shutdown(d->fd, SHUT_RDWR);
	return NULL;
}

/* The handshake with these keys; both sides' results. The sockets stay open in *sv. */
static int handshake(struct chan *src, struct dest_side *dst, const uint8_t *ks, const uint8_t *kd, int sv[2])
{
	pthread_t th;
	int ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(dst, 0, sizeof(*dst));
	dst->fd = sv[1];
	dst->key = kd;
	assert_int_equal(pthread_create(&th, NULL, dest_thread, dst), 0);
	ret = chan_connect(src, sv[0], ks);
	pthread_join(th, NULL);
	return ret;
}

static int temp_fd(void)
{
	char path[] = "/tmp/kvmbox-chan-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* The test data: bytes that differ from one position to the next. */
static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + i / 251);
	return p;
}

#define DATA_LEN (3 * CHAN_MSG + 1000) /* four messages: three full, one FINAL */

/* A source and a destination past the handshake; the source's data, written and ended with
 * FINAL, sits in the file *wire (rewound). */
struct pair {
	struct chan src;
	struct dest_side dst;
	int sv[2];
	int wire;
	uint8_t *data;
};

static void pair_setup(struct pair *p)
{
	assert_int_equal(handshake(&p->src, &p->dst, key_a, key_a, p->sv), 0);
	assert_int_equal(p->dst.ret, 0);
	assert_memory_equal(p->dst.magic, CHAN_MAGIC, 8);
	p->wire = temp_fd();
	p->src.fd = p->wire;
	p->dst.c.fd = p->wire;
	p->data = pattern(DATA_LEN);
	/* Uneven pieces: messages are cut at CHAN_MSG, not at the writes. */
	assert_int_equal(chan_write(&p->src, p->data, 5), 0);
	assert_int_equal(chan_write(&p->src, p->data + 5, DATA_LEN - 5), 0);
	assert_int_equal(chan_flush(&p->src, true), 0);
	assert_int_equal(lseek(p->wire, 0, SEEK_SET), 0);
}

static void pair_free(struct pair *p)
{
	chan_free(&p->src);
	chan_free(&p->dst.c);
	close(p->sv[0]);
	close(p->sv[1]);
	close(p->wire);
	free(p->data);
}

/* The destination reads the whole data back: 0, or -1 with errno. */
static int read_back(struct pair *p)
{
	uint8_t *got = malloc(DATA_LEN);
	int ret;

	assert_non_null(got);
	ret = chan_read(&p->dst.c, got, DATA_LEN);
	if (ret == 0)
		assert_memory_equal(got, p->data, DATA_LEN);
	free(got);
	return ret;
}

static void test_roundtrip(void **state)
{
	struct pair p;
	uint8_t b;

	pair_setup(&p);
	assert_true(p.src.secure);
	assert_false(chan_at_end(&p.dst.c));
	assert_int_equal(read_back(&p), 0);
	assert_true(chan_at_end(&p.dst.c));
	/* Nothing may follow the FINAL message. */
	assert_int_equal(chan_read(&p.dst.c, &b, 1), -1);
	assert_int_equal(errno, EPROTO);
	/* The other direction (the destination's answer) works too, on the socket. */
	p.src.fd = p.sv[0];
	p.dst.c.fd = p.sv[1];
	{
		uint32_t ack = 0x01020304, got = 0;

		assert_int_equal(chan_write(&p.dst.c, &ack, 4), 0);
		assert_int_equal(chan_flush(&p.dst.c, true), 0);
		assert_int_equal(chan_read(&p.src, &got, 4), 0);
		assert_int_equal(got, ack);
		assert_true(chan_at_end(&p.src));
	}
	pair_free(&p);
}

/* The bytes of the data as they are on the wire are not the data. */
static void test_encrypted(void **state)
{
	struct pair p;
	uint8_t *wire = malloc(DATA_LEN + 4096);
	ssize_t n;

	assert_non_null(wire);
	pair_setup(&p);
	n = read(p.wire, wire, DATA_LEN + 4096);
	assert_true(n > DATA_LEN);
	assert_null(memmem(wire, (size_t)n, p.data + 1000, 64));
	free(wire);
	pair_free(&p);
}

static void test_wrong_key(void **state)
{
	struct chan src;
	struct dest_side dst;
	int sv[2];

	assert_int_equal(handshake(&src, &dst, key_a, key_b, sv), -1);
	/* The destination finds the source's proof false; the source sees it hang up. */
	assert_int_equal(dst.ret, -1);
	assert_true(dst.auth_failed);
	assert_false(src.auth_failed);
	close(sv[0]);
	close(sv[1]);
}

/* Every byte of the stream counts: a flipped one in each of the length, the sealed message
 * and its tag is refused. */
static void test_flipped_byte(void **state)
{
	static const off_t where[] = { 2, 4 + 10, 4 + CHAN_MSG + 5, 4 + CHAN_MSG + 17 + 3 };

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		struct pair p;
		uint8_t b;

		pair_setup(&p);
		assert_int_equal(pread(p.wire, &b, 1, where[i]), 1);
		b ^= 0x20;
		assert_int_equal(pwrite(p.wire, &b, 1, where[i]), 1);
		assert_int_equal(read_back(&p), -1);
		if (!p.dst.c.auth_failed)
			fail_msg("byte %lld flipped: errno %d, not an authentication failure",
				 (long long)where[i], errno);
		pair_free(&p);
	}
}

/* Cut anywhere, even right after a whole message, the stream is not complete. */
static void test_truncated(void **state)
{
	static const off_t cut[] = { 1, 4 + 100, 3 * (4 + CHAN_MSG + 17) };

	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		struct pair p;

		pair_setup(&p);
		assert_int_equal(ftruncate(p.wire, cut[i]), 0);
		assert_int_equal(read_back(&p), -1);
		assert_int_equal(errno, ECONNRESET);
		assert_false(chan_at_end(&p.dst.c));
		pair_free(&p);
	}
	/* Without its FINAL message, a reader that got all the data still sees no end. */
	{
		struct pair p;
		uint8_t *got = malloc(3 * CHAN_MSG);

		pair_setup(&p);
		assert_int_equal(ftruncate(p.wire, 3 * (4 + CHAN_MSG + 17)), 0);
		assert_int_equal(chan_read(&p.dst.c, got, 3 * CHAN_MSG), 0);
		assert_false(chan_at_end(&p.dst.c));
		free(got);
		pair_free(&p);
	}
}

static void test_reordered(void **state)
{
	struct pair p;
	size_t m = 4 + CHAN_MSG + 17; /* one full message on the wire */
	uint8_t *a = malloc(m), *b = malloc(m);

	assert_non_null(a);
	assert_non_null(b);
	pair_setup(&p);
	assert_int_equal(pread(p.wire, a, m, 0), (ssize_t)m);
	assert_int_equal(pread(p.wire, b, m, (off_t)m), (ssize_t)m);
	assert_int_equal(pwrite(p.wire, b, m, 0), (ssize_t)m);
	assert_int_equal(pwrite(p.wire, a, m, (off_t)m), (ssize_t)m);
	assert_int_equal(read_back(&p), -1);
	assert_true(p.dst.c.auth_failed);
	pair_free(&p);
	/* A message given twice (replayed) is refused too. */
	pair_setup(&p);
	assert_int_equal(pread(p.wire, a, m, 0), (ssize_t)m);
	assert_int_equal(pwrite(p.wire, a, m, (off_t)m), (ssize_t)m);
	assert_int_equal(read_back(&p), -1);
	assert_true(p.dst.c.auth_failed);
	pair_free(&p);
	free(a);
	free(b);
}

/* A destination's answer recorded from one migration is not taken by another source. */
static void test_replayed_answer(void **state)
{
	struct pair p1, p2;
	uint8_t msg[4 + 4 + 17], got[4];
	int s[2];

	pair_setup(&p1);
	pair_setup(&p2);
	/* p1's destination answers; the bytes are given to p2's source instead. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	p1.dst.c.fd = s[1];
	assert_int_equal(chan_write(&p1.dst.c, "\0\0\0\0", 4), 0);
	assert_int_equal(chan_flush(&p1.dst.c, true), 0);
	assert_int_equal(read(s[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	assert_int_equal(write(s[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	p2.src.fd = s[0];
	assert_int_equal(chan_read(&p2.src, got, 4), -1);
	assert_true(p2.src.auth_failed);
	close(s[0]);
	close(s[1]);
	pair_free(&p1);
	pair_free(&p2);
}

static void test_plain(void **state)
{
	struct chan a, b;
	int sv[2];
	char got[6];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	chan_init_plain(&a, sv[0]);
	chan_init_plain(&b, sv[1]);
	assert_int_equal(chan_write(&a, "hello", 5), 0);
	assert_int_equal(chan_flush(&a, true), 0);
	assert_int_equal(chan_read(&b, got, 5), 0);
	assert_memory_equal(got, "hello", 5);
	assert_true(chan_at_end(&b));
	chan_free(&a);
	chan_free(&b);
	close(sv[0]);
	close(sv[1]);
}

/* ---- key files ---- */

static char key_path[64];

static void write_key(const void *data, size_t len, mode_t mode)
{
	int fd;

	strcpy(key_path, "/tmp/kvmbox-key-XXXXXX");
	fd = mkstemp(key_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void expect_key(int want, const char *why)
{
	struct stderr_capture cap;
	uint8_t key[KEY_BYTES];
	const char *nl;
	int ret;

	stderr_capture_begin(&cap);
	ret = key_file_load(key_path, "--migration-key", key);
	stderr_capture_end(&cap);
	assert_int_equal(ret, want);
	if (want == 0) {
		assert_string_equal(cap.text, "");
		return;
	}
	if (!strstr(cap.text, why) || !strstr(cap.text, "--migration-key"))
		fail_msg("refused for another reason: \"%s\", expected \"%s\"", cap.text, why);
	nl = strchr(cap.text, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
}

static void test_key_files(void **state)
{
	uint8_t raw[KEY_BYTES], key[KEY_BYTES];
	char hex[2 * KEY_BYTES + 2];

	for (int i = 0; i < KEY_BYTES; i++) {
		raw[i] = (uint8_t)(0xa0 + i);
		sprintf(hex + 2 * i, "%02X", raw[i]);
	}
	/* Raw 32 bytes, mode 0600 and 0400. */
	write_key(raw, sizeof(raw), 0600);
	expect_key(0, NULL);
	assert_int_equal(key_file_load(key_path, "--migration-key", key), 0);
	assert_memory_equal(key, raw, KEY_BYTES);
	unlink(key_path);
	write_key(raw, sizeof(raw), 0400);
	expect_key(0, NULL);
	unlink(key_path);
	/* 64 hex digits, with or without a newline. */
	hex[2 * KEY_BYTES] = '\n';
	write_key(hex, 2 * KEY_BYTES + 1, 0600);
	memset(key, 0, sizeof(key));
	assert_int_equal(key_file_load(key_path, "--migration-key", key), 0);
	assert_memory_equal(key, raw, KEY_BYTES);
	unlink(key_path);
	/* Readable or writable by others. */
	write_key(raw, sizeof(raw), 0640);
	expect_key(-1, "mode 0640 lets other users at the key; chmod 600");
	unlink(key_path);
	write_key(raw, sizeof(raw), 0604);
	expect_key(-1, "chmod 600");
	unlink(key_path);
	write_key(raw, sizeof(raw), 0620);
	expect_key(-1, "chmod 600");
	unlink(key_path);
	/* The wrong size, a hex digit that is not one. */
	write_key(raw, 31, 0600);
	expect_key(-1, "not a key (32 bytes, or 64 hex digits)");
	unlink(key_path);
	write_key(raw, 0, 0600);
	expect_key(-1, "not a key");
	unlink(key_path);
	hex[5] = 'g';
	write_key(hex, 2 * KEY_BYTES, 0600);
	expect_key(-1, "not a key");
	unlink(key_path);
	/* Not there, not a file. */
	strcpy(key_path, "/nonexistent/key");
	expect_key(-1, "No such file or directory");
	strcpy(key_path, "/tmp");
	expect_key(-1, "not a regular file");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_encrypted),
		cmocka_unit_test(test_wrong_key),       cmocka_unit_test(test_flipped_byte),
		cmocka_unit_test(test_truncated),       cmocka_unit_test(test_reordered),
		cmocka_unit_test(test_replayed_answer), cmocka_unit_test(test_plain),
		cmocka_unit_test(test_key_files),
	};

	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key_a, sizeof(key_a));
	randombytes_buf(key_b, sizeof(key_b));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
