/* Unit tests for virtio-vsock (virtio/vsock.c) without a kernel behind it: --vsock option
 * parsing and CID validation, the configuration record, config space (guest_cid, le64,
 * read-only), and the event queue: the transport reset event goes into the driver's event
 * buffer at once or as soon as one arrives, after a load once the transport says it is loaded,
 * and never to a reset device; the vhost helper's dirty log. The rx and tx rings are vhost-vsock's and are not driven here
 * (tests/linux: linux-vsock-*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ser.h"
#include "virtio/vhost.h"
#include "virtio/vsock.h"
#include "vq_driver.h"

#define RAM_SIZE (4ULL << 20)
#define QSZ      16
#define BUF_GPA  0x100000ULL

static int setup(void **state)
{
	struct vq_fixture *x = vq_fixture_new(state, sizeof(*x), RAM_SIZE, false, BUF_GPA, RAM_SIZE);

	vq_fixture_attach(x, virtio_vsock_create_nobackend(&x->ram.mem, 0x12345678, 0), QSZ);
	return 0;
}

/* ---- option parsing ---- */

static int parse(const char *arg, struct vsock_config *c)
{
	struct stderr_capture cap;
	int r;

	memset(c, 0, sizeof(*c));
	stderr_capture_begin(&cap);
	r = virtio_vsock_type.parse(c, arg);
	stderr_capture_end(&cap);
	return r;
}

static void test_parse_cid(void **state)
{
	static const char *const bad[] = {
		"0",  "1",  "2",  "4294967295", "4294967296", "18446744073709551616", "", "abc", "3x",
		"-5", " 3", "+3", "0x10",       NULL
	};
	uint32_t cid = 0;

	assert_int_equal(vsock_parse_cid("3", &cid), 0);
	assert_int_equal(cid, 3);
	assert_int_equal(vsock_parse_cid("42", &cid), 0);
	assert_int_equal(cid, 42);
	assert_int_equal(vsock_parse_cid("4294967294", &cid), 0);
	assert_int_equal(cid, 4294967294u);
	for (unsigned i = 0; bad[i]; i++) {
		cid = 7;
		assert_int_equal(vsock_parse_cid(bad[i], &cid), -1);
		assert_int_equal(cid, 7); /* untouched */
	}
	assert_int_equal(vsock_parse_cid(NULL, &cid), -1);
}

static void test_parse_option(void **state)
{
	struct vsock_config c;
	struct stderr_capture cap;
	const char *msg;

	assert_int_equal(parse("cid=42", &c), 0);
	assert_int_equal(c.cid, 42);
	assert_int_equal(parse("cid=4294967294", &c), 0);
	assert_int_equal(c.cid, 4294967294u);
	assert_int_equal(parse("cid=2", &c), -1);
	assert_int_equal(parse("cid=4294967295", &c), -1);
	assert_int_equal(parse("cid", &c), -1);
	assert_int_equal(parse("", &c), -1);
	assert_int_equal(parse("uds=/tmp/v.sock", &c), -1);
	assert_int_equal(parse("cid=5,port=3", &c), -1);

	/* The messages say what to give. */
	memset(&c, 0, sizeof(c));
	stderr_capture_begin(&cap);
	assert_int_equal(virtio_vsock_type.parse(&c, "cid=1"), -1);
	msg = stderr_capture_end(&cap);
	assert_non_null(strstr(msg, "cid '1' is not a guest CID"));
	assert_non_null(strstr(msg, "from 3 to 4294967294"));
	stderr_capture_begin(&cap);
	assert_int_equal(virtio_vsock_type.parse(&c, ""), -1);
	msg = stderr_capture_end(&cap);
	assert_non_null(strstr(msg, "give --vsock cid=N"));
	assert_string_equal(virtio_vsock_type.option, "vsock");
	assert_int_equal(virtio_vsock_type.max, 1);
}

static void test_config_record(void **state)
{
	struct vsock_config c = { .cid = 1234 }, back = { 0 };
	struct ser_writer w;
	struct ser_reader r;
	uint8_t bad[4];

	ser_writer_init(&w);
	virtio_vsock_type.save(&c, &w);
	ser_reader_init(&r, w.buf, w.len);
	assert_int_equal(virtio_vsock_type.load(&back, &r), 0);
	assert_int_equal(back.cid, 1234);
	ser_writer_free(&w);
	/* A reserved CID or a short record is refused. */
	put_le32(bad, 2);
	ser_reader_init(&r, bad, 4);
	assert_int_equal(virtio_vsock_type.load(&back, &r), -1);
	ser_reader_init(&r, bad, 3);
	assert_int_equal(virtio_vsock_type.load(&back, &r), -1);
}

/* ---- the device ---- */

static void test_identity_and_config(void **state)
{
	struct vq_fixture *x = *state;

	assert_int_equal(x->vd->ops->device_id, VIRTIO_ID_VSOCK);
	assert_int_equal(VIRTIO_ID_VSOCK, 19);
	assert_int_equal(x->vd->num_queues, 3);
	assert_int_equal(x->vd->host_features, 0);
	assert_int_equal(x->vd->config_size, 8);
	assert_int_equal(get_le64(x->vd->config), 0x12345678);
	/* guest_cid is read-only: a driver's write is undone. */
	memset(x->vd->config, 0xab, 8);
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->config_write(x->vd, 0, 8);
	pthread_mutex_unlock(&x->vd->lock);
	assert_int_equal(get_le64(x->vd->config), 0x12345678);
}

static void reset_event(struct vq_fixture *x)
{
	pthread_mutex_lock(&x->vd->lock);
	virtio_vsock_transport_reset(x->vd);
	pthread_mutex_unlock(&x->vd->lock);
}

static void test_transport_reset_event(void **state)
{
	struct vq_fixture *x = *state;
	uint64_t ev;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	ev = vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 8, true);
	vqd_put32(&x->d, ev, 0xffffffff);
	vqd_kick(x->vd, VIRTIO_VSOCK_EVTQ); /* nothing to say yet */
	assert_false(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
	reset_event(x);
	assert_true(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
	assert_int_equal(len, 4);
	assert_int_equal(vqd_get32(&x->d, ev), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	assert_int_equal(x->f.notified[VIRTIO_VSOCK_EVTQ], 1);
	assert_int_equal(x->f.needs_reset, 0);
	/* One event per request. */
	vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 8, true);
	vqd_kick(x->vd, VIRTIO_VSOCK_EVTQ);
	assert_false(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
}

/* No event buffer: the event waits for the driver's next one (and its kick). */
static void test_event_waits_for_buffer(void **state)
{
	struct vq_fixture *x = *state;
	uint64_t ev;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	reset_event(x);
	assert_false(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
	ev = vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 4, true);
	vqd_put32(&x->d, ev, 0xffffffff);
	vqd_kick(x->vd, VIRTIO_VSOCK_EVTQ);
	assert_true(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
	assert_int_equal(len, 4);
	assert_int_equal(vqd_get32(&x->d, ev), 0);
}

/* A buffer too small for an event, or a readable one, breaks the device. */
static void test_event_buffer_too_small(void **state)
{
	struct vq_fixture *x = *state;

	vqd_activate(&x->d, x->vd, 0);
	vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 8, false);
	reset_event(x);
	assert_int_equal(x->f.needs_reset, 1);
}

/* A reset forgets a pending event (the next driver has no connections to reset). */
static void test_reset_forgets_event(void **state)
{
	struct vq_fixture *x = *state;
	uint32_t id, len;

	vqd_activate(&x->d, x->vd, 0);
	reset_event(x);
	pthread_mutex_lock(&x->vd->lock);
	x->vd->ops->reset(x->vd);
	x->vd->activated = false;
	pthread_mutex_unlock(&x->vd->lock);
	vqd_forget(&x->d);
	vqd_clear_rings(&x->d);
	vqd_activate(&x->d, x->vd, 0);
	vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 4, true);
	vqd_kick(x->vd, VIRTIO_VSOCK_EVTQ);
	assert_false(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
}

/* A load (restore, migration) tells the driver its connections are gone, once the transport
 * is loaded; config space is this VM's CID, whatever the snapshot held. */
static void test_load_sends_reset(void **state)
{
	struct vq_fixture *x = *state;
	struct virtio_dev *vd2 = virtio_vsock_create_nobackend(&x->ram.mem, 77, 0);
	struct vq_transport f2 = { 0 };
	struct ser_writer w;
	struct ser_reader r;
	uint64_t ev;
	uint32_t id, len;
	int ret = 0;

	assert_non_null(vd2);
	vqd_activate(&x->d, x->vd, 0);
	ev = vqd_add_buf(&x->d, VIRTIO_VSOCK_EVTQ, 4, true);
	vqd_put32(&x->d, ev, 0xffffffff);
	ser_writer_init(&w);
	pthread_mutex_lock(&x->vd->lock);
	for (unsigned q = 0; q < 3; q++)
		virtq_save(&x->vd->vqs[q], &w);
	x->vd->ops->save(x->vd, &w);
	pthread_mutex_unlock(&x->vd->lock);

	vq_transport_attach(&f2, vd2);
	ser_reader_init(&r, w.buf, w.len);
	pthread_mutex_lock(&vd2->lock);
	vd2->features = 1ULL << VIRTIO_F_VERSION_1;
	vd2->activated = true;
	for (unsigned q = 0; q < 3 && ret == 0; q++)
		ret = virtq_load(&vd2->vqs[q], &x->ram.mem, &r);
	if (ret == 0)
		ret = vd2->ops->load(vd2, &r);
	assert_int_equal(ret, 0);
	assert_true(ser_reader_done(&r));
	assert_int_equal(get_le64(vd2->config), 77);
	/* Nothing before the transport is whole. */
	assert_int_equal(vqd_used_idx(&x->d, VIRTIO_VSOCK_EVTQ), 0);
	vd2->ops->loaded(vd2);
	pthread_mutex_unlock(&vd2->lock);
	assert_true(vqd_next_used(&x->d, VIRTIO_VSOCK_EVTQ, &id, &len));
	assert_int_equal(len, 4);
	assert_int_equal(vqd_get32(&x->d, ev), VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
	assert_int_equal(f2.notified[VIRTIO_VSOCK_EVTQ], 1);

	/* A bad version or flag is refused. */
	w.buf[w.len - 2] = 9;
	ser_reader_init(&r, w.buf, w.len);
	pthread_mutex_lock(&vd2->lock);
	ret = 0;
	for (unsigned q = 0; q < 3 && ret == 0; q++)
		ret = virtq_load(&vd2->vqs[q], &x->ram.mem, &r);
	assert_int_equal(ret, 0);
	assert_int_equal(vd2->ops->load(vd2, &r), -1);
	pthread_mutex_unlock(&vd2->lock);
	ser_writer_free(&w);
	vd2->ops->destroy(vd2);
}

/* The shared vhost helper (virtio/vhost.c) turns vhost's dirty log into dirty pages for a
 * migration and starts the log afresh. */
static void test_vhost_log_collect(void **state)
{
	struct vq_fixture *x = *state;
	uint8_t log[(RAM_SIZE / 4096 + 7) / 8] = { 0 };
	unsigned long bits[RAM_SIZE / 4096 / (8 * sizeof(unsigned long)) + 1] = { 0 };
	unsigned n = 0;

	vhost_log_collect(&x->ram.mem, log, sizeof(log)); /* not migrating: nothing to mark */
	assert_int_equal(guest_mem_dirty_start(&x->ram.mem), 0);
	log[0] = 0x05;               /* pages 0 and 2 */
	log[sizeof(log) - 1] = 0x80; /* the last page */
	vhost_log_collect(&x->ram.mem, log, sizeof(log));
	vhost_log_collect(&x->ram.mem, NULL, 0); /* no log: nothing */
	guest_mem_dirty_take(&x->ram.mem, bits);
	for (uint64_t p = 0; p < RAM_SIZE / 4096; p++)
		if (bits[p / (8 * sizeof(unsigned long))] & (1UL << (p % (8 * sizeof(unsigned long))))) {
			assert_true(p == 0 || p == 2 || p == RAM_SIZE / 4096 - 1);
			n++;
		}
	assert_int_equal(n, 3);
	for (size_t i = 0; i < sizeof(log); i++)
		assert_int_equal(log[i], 0);
	guest_mem_dirty_stop(&x->ram.mem);
	free(x->ram.mem.dirty); /* fake RAM does not own it */
	x->ram.mem.dirty = NULL;
}

/* Without a backend, release and reacquire have nothing to hand over. */
static void test_release_nobackend(void **state)
{
	struct vq_fixture *x = *state;

	vqd_activate(&x->d, x->vd, 0);
	assert_int_equal(vqd_release(x->vd), 0);
	assert_int_equal(vqd_reacquire(x->vd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cid),
		cmocka_unit_test(test_parse_option),
		cmocka_unit_test(test_config_record),
		cmocka_unit_test_setup_teardown(test_identity_and_config, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_transport_reset_event, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_event_waits_for_buffer, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_event_buffer_too_small, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_reset_forgets_event, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_load_sends_reset, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_release_nobackend, setup, vq_fixture_free),
		cmocka_unit_test_setup_teardown(test_vhost_log_collect, setup, vq_fixture_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
