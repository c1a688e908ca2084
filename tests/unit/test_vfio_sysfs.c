/* Unit tests for finding a function to pass through (devices/vfio_sysfs.c): address parsing and
 * the sysfs checks with their fixes, against a made-up sysfs tree in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/vfio.h"
#include "devices/vfio_sysfs.h"

struct tree {
	char root[64];
};

static void sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

/* A function in a tree: its directory, its group link and the group's entry; drv "" = none. */
static void add_fn(struct tree *t, const char *bdf, int group, const char *drv)
{
	sh("cd %s && mkdir -p bus/pci/devices/%s bus/pci/drivers kernel/iommu_groups/%d/devices", t->root,
	   bdf, group);
	sh("cd %s && ln -s ../../../../kernel/iommu_groups/%d bus/pci/devices/%s/iommu_group", t->root, group,
	   bdf);
	sh("cd %s && ln -s ../../../../bus/pci/devices/%s kernel/iommu_groups/%d/devices/%s", t->root, bdf,
	   group, bdf);
	if (drv[0])
		sh("cd %s && mkdir -p bus/pci/drivers/%s && ln -s ../../../../bus/pci/drivers/%s bus/pci/devices/%s/driver",
		   t->root, drv, drv, bdf);
}

static int setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));

	snprintf(t->root, sizeof(t->root), "/tmp/kvmbox-vfio-sysfs.XXXXXX");
	assert_non_null(mkdtemp(t->root));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tree *t = *state;

	sh("rm -rf -- %s", t->root);
	free(t);
	return 0;
}

static void expect_bdf(const char *arg, const char *want)
{
	char bdf[VFIO_BDF_LEN], err[256] = "";

	if (vfio_parse_bdf(arg, bdf, err, sizeof(err)) < 0)
		fail_msg("%s refused: %s", arg, err);
	assert_string_equal(bdf, want);
}

static void test_parse_bdf(void **state)
{
	const char *bad[] = { "",         "0000:01:00",     "01:00.8",
			      "01:20.0",  "0000:01:00.0.1", "00001:01:00.0",
			      "g1:00.0",  "0000-01:00.0",   "/sys/bus/pci/devices/",
			      "01:00.0 ", "1:0.0" };
	char bdf[VFIO_BDF_LEN], err[256];

	(void)state;
	expect_bdf("0000:01:00.0", "0000:01:00.0");
	expect_bdf("01:00.0", "0000:01:00.0");
	expect_bdf("0001:AF:1f.7", "0001:af:1f.7");
	expect_bdf("/sys/bus/pci/devices/0000:00:02.0", "0000:00:02.0");
	expect_bdf("/sys/bus/pci/devices/0000:00:02.0/", "0000:00:02.0");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		if (vfio_parse_bdf(bad[i], bdf, err, sizeof(err)) == 0)
			fail_msg("'%s' accepted as %s", bad[i], bdf);
		assert_non_null(strstr(err, "lspci -D"));
	}
}

static void check_fn(struct tree *t, const char *bdf, int want_group, const char *words)
{
	char err[512] = "";
	int g = -1, rc = vfio_sysfs_check(t->root, bdf, &g, err, sizeof(err));

	if (!words) {
		if (rc < 0)
			fail_msg("%s refused: %s", bdf, err);
		assert_int_equal(g, want_group);
		return;
	}
	assert_int_equal(rc, -1);
	if (!strstr(err, words))
		fail_msg("error '%s' does not say '%s'", err, words);
}

static void test_sysfs_check(void **state)
{
	struct tree *t = *state;

	add_fn(t, "0000:00:02.0", 2, "vfio-pci");
	check_fn(t, "0000:00:02.0", 2, NULL);
	/* Not there. */
	check_fn(t, "0000:00:03.0", 0, "no such PCI function");
	/* Bound to a host driver: the commands to rebind it, unbind first. */
	add_fn(t, "0000:00:04.0", 4, "nvme");
	check_fn(t, "0000:00:04.0", 0, "bound to nvme, not vfio-pci");
	check_fn(t, "0000:00:04.0", 0,
		 "echo 0000:00:04.0 > /sys/bus/pci/devices/0000:00:04.0/driver/unbind; echo vfio-pci > "
		 "/sys/bus/pci/devices/0000:00:04.0/driver_override");
	/* Bound to nothing: no unbind. */
	add_fn(t, "0000:00:05.0", 5, "");
	check_fn(t, "0000:00:05.0", 0,
		 "bound to no driver, not vfio-pci; bind it with: modprobe vfio-pci; echo "
		 "vfio-pci");
	/* No IOMMU: no group link. Bound to no driver, binding it to vfio-pci comes first (an
	 * arm64 SMMU groups a function when a driver probes it); bound to one, no IOMMU. */
	sh("cd %s && mkdir -p bus/pci/devices/0000:00:06.0", t->root);
	check_fn(t, "0000:00:06.0", 0,
		 "no IOMMU group and is bound to no driver; bind it with: modprobe vfio-pci; echo "
		 "vfio-pci > /sys/bus/pci/devices/0000:00:06.0/driver_override; echo 0000:00:06.0 > "
		 "/sys/bus/pci/drivers_probe");
	check_fn(t, "0000:00:06.0", 0, "intel_iommu=on");
	sh("cd %s && mkdir -p bus/pci/drivers/nvme && ln -s ../../../../bus/pci/drivers/nvme "
	   "bus/pci/devices/0000:00:06.0/driver",
	   t->root);
	check_fn(t, "0000:00:06.0", 0, "the function has no IOMMU group: the host runs without an IOMMU");
	/* A group with a bridge (pcieport), an unbound function and a stub: viable. */
	add_fn(t, "0000:01:00.0", 7, "vfio-pci");
	add_fn(t, "0000:00:1c.0", 7, "pcieport");
	add_fn(t, "0000:01:00.1", 7, "");
	add_fn(t, "0000:01:00.2", 7, "pci-stub");
	check_fn(t, "0000:01:00.0", 7, NULL);
	/* One function of the group on a host driver: not viable, and which one says so. */
	add_fn(t, "0000:01:00.3", 7, "snd_hda_intel");
	check_fn(t, "0000:01:00.0", 0,
		 "IOMMU group 7 is not viable: 0000:01:00.3 in the same group is bound to "
		 "snd_hda_intel");
	/* A group link that is no number. */
	sh("cd %s && mkdir -p bus/pci/devices/0000:00:08.0 && ln -s ../../../../kernel/iommu_groups/x "
	   "bus/pci/devices/0000:00:08.0/iommu_group",
	   t->root);
	check_fn(t, "0000:00:08.0", 0, "not a number");
}

static void test_group_open(void **state)
{
	struct tree *t = *state;
	char err[512] = "";
	int fd;

	assert_int_equal(vfio_group_open(t->root, 9, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "modprobe vfio-pci"));
	sh("touch %s/9", t->root);
	fd = vfio_group_open(t->root, 9, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	/* Permissions only bite without CAP_DAC_OVERRIDE (not as root). */
	if (geteuid() != 0) {
		sh("chmod 000 %s/9", t->root);
		assert_int_equal(vfio_group_open(t->root, 9, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "permission denied"));
	}
}

/* vfio_dev_open stops at the first refusal with its message and leaves nothing open. */
static void test_dev_open_refusals(void **state)
{
	struct tree *t = *state;
	char dev[128], err[512] = "";
	struct vfio_paths p = { t->root, dev };
	struct vfio_dev d;

	snprintf(dev, sizeof(dev), "%s/dev", t->root);
	sh("mkdir -p %s", dev);
	add_fn(t, "0000:00:02.0", 2, "nvme");
	assert_int_equal(vfio_dev_open(&d, &p, "0000:00:02.0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bound to nvme"));
	assert_int_equal(d.container, -1);
	add_fn(t, "0000:00:03.0", 3, "vfio-pci");
	/* No /dev/vfio/vfio: the module to load. */
	assert_int_equal(vfio_dev_open(&d, &p, "0000:00:03.0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "modprobe vfio-pci"));
	/* Something that is no VFIO container. */
	sh("touch %s/vfio", dev);
	assert_int_equal(vfio_dev_open(&d, &p, "0000:00:03.0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "VFIO API is version -1"));
	assert_int_equal(d.container, -1);
	assert_int_equal(d.group, -1);
	assert_int_equal(d.fd, -1);
	vfio_dev_close(&d); /* closed twice: a no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_bdf),
		cmocka_unit_test_setup_teardown(test_sysfs_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_open_refusals, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
