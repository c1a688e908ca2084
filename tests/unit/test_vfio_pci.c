/* Unit tests for the passed-through PCI device type (devices/vfio_pci.c) as far as no kernel is
 * needed: the option's parsing and its one-line refusals, the option in the one table (so a
 * configuration file's `device = vfio=...` too), and snapshots and migrations refused for a VM
 * with such a device (vm_pinned). The device itself runs in tests/linux/vfio. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/devtype.h"
#include "core/vm.h"
#include "devices/vfio_pci.h"
#include "fakes.h"

static void test_parse(void **state)
{
	struct vfio_pci_config c;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(vfio_pci_parse(&c, "vfio=0000:01:00.0"), 0);
	assert_string_equal(c.bdf, "0000:01:00.0");
	assert_int_equal(vfio_pci_parse(&c, "vfio=03:1F.7"), 0);
	assert_string_equal(c.bdf, "0000:03:1f.7");
	assert_int_equal(vfio_pci_parse(&c, "vfio=/sys/bus/pci/devices/0001:00:02.0"), 0);
	assert_string_equal(c.bdf, "0001:00:02.0");
	assert_int_equal(vfio_pci_parse(&c, "nvme=0000:01:00.0"), -1);
	assert_int_equal(vfio_pci_parse(&c, "vfio="), -1);
	assert_int_equal(vfio_pci_parse(&c, "vfio=0000:01:20.0"), -1); /* device 32 */
	assert_int_equal(vfio_pci_parse(&c, "vfio=0000:01:00.8"), -1);
	assert_int_equal(vfio_pci_parse(&c, "0000:01:00.0"), -1);
}

/* The type is the one table's: --device and `device =` reach it, repeatable up to its max. */
static void test_in_the_table(void **state)
{
	struct vm_config cfg = { 0 };

	(void)state;
	assert_ptr_equal(device_type_by_name("vfio-pci"), &vfio_pci_type);
	assert_string_equal(vfio_pci_type.option, "device");
	assert_non_null(vfio_pci_type.check);
	assert_int_equal(vm_config_add(&cfg, &vfio_pci_type, "vfio=0000:01:00.0"), 0);
	assert_int_equal(vm_config_add(&cfg, &vfio_pci_type, "vfio=0000:02:00.0"), 0);
	assert_int_equal(cfg.nr_devs, 2);
	assert_string_equal(((struct vfio_pci_config *)cfg.devs[1].cfg)->bdf, "0000:02:00.0");
	assert_int_equal(vm_config_add(&cfg, &vfio_pci_type, "vfio=bad"), -1);
	assert_int_equal(cfg.nr_devs, 2);
	vm_config_free_devices(&cfg);
}

/* A VM with a passed-through device: snapshot, hibernate and migrate refused with one line that
 * names the device, why and the way out; without one, nothing is refused. */
static void test_pinned(void **state)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	char msg[256] = "";

	(void)state;
	assert_non_null(vm);
	assert_int_equal(vm_pinned(vm, "snapshot", msg, sizeof(msg)), 0);
	vm->instances[vm->nr_instances++] = (struct vm_instance){ .type = device_type_by_name("virtio-blk") };
	assert_int_equal(vm_pinned(vm, "snapshot", msg, sizeof(msg)), 0);
	vm->instances[vm->nr_instances++] = (struct vm_instance){ .type = &vfio_pci_type };
	assert_int_equal(vm_pinned(vm, "hibernate", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "hibernate refused"));
	assert_non_null(strstr(msg, "vfio-pci device (--device)"));
	assert_non_null(strstr(msg, "hardware"));
	assert_null(strchr(msg, '\n'));
	assert_int_equal(vm_pinned(vm, "migrate", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "without it to migrate"));
	free(vm);
}

/* --balloon with a passed-through device is refused before anything is opened: the IOMMU would
 * keep the pages the balloon gives back. */
static void test_no_balloon(void **state)
{
	struct vm_config cfg = { 0 };
	struct vm *vm = calloc(1, sizeof(*vm));

	(void)state;
	assert_non_null(vm);
	vm_init(vm, &cfg);
	assert_int_equal(vm_config_add(&cfg, device_type_by_name("virtio-balloon"), NULL), 0);
	assert_int_equal(vm_config_add(&cfg, &vfio_pci_type, "vfio=0000:01:00.0"), 0);
	struct stderr_capture cap;
	void *model;
	const char *out;

	stderr_capture_begin(&cap);
	model = vfio_pci_type.create(vm, cfg.devs[1].cfg, 0);
	out = stderr_capture_end(&cap);
	assert_null(model);
	assert_null(vm->devices);
	if (!strstr(out, "--device vfio=0000:01:00.0: cannot be used with --balloon") ||
	    strchr(out, '\n') != strrchr(out, '\n'))
		fail_msg("not the one balloon line: '%s'", out);
	vm_config_free_devices(&cfg);
	free(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_in_the_table),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_no_balloon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
