/* vfio_sysfs.h - finding a PCI function to pass through (VFIO) and saying what is in the way.
 *
 * A user names the function by its address, "0000:01:00.0" or "01:00.0" (domain 0000), or by
 * its sysfs directory, /sys/bus/pci/devices/0000:01:00.0. Before kvmbox opens anything, sysfs
 * tells whether pass-through can work, and each refusal names the fix:
 *   - no such function (lspci -D lists them);
 *   - no IOMMU group: the host runs without an IOMMU (intel_iommu=on / amd_iommu=on);
 *   - bound to another driver than vfio-pci (the driver_override commands to rebind it);
 *   - the group not viable: another function of the IOMMU group is bound to a host driver
 *     (which one, and that it must go to vfio-pci too).
 * Functions bound to nothing, to vfio-pci, to pci-stub or to pcieport (bridges) leave a group
 * viable, as the kernel's own check does. Then vfio_group_open() opens /dev/vfio/N with the
 * reasons for ENOENT (vfio-pci not loaded), EACCES (the permission to give) and EBUSY (another
 * process has the group).
 * The sysfs root and the /dev/vfio directory are parameters, so unit tests use a made-up tree. */
#ifndef KVMBOX_DEVICES_VFIO_SYSFS_H
#define KVMBOX_DEVICES_VFIO_SYSFS_H

#include <stddef.h>

#define VFIO_BDF_LEN 13 /* "dddd:bb:dd.f" and its NUL */

/* Parse the user's name for a function into its full address (lower case, with domain).
 * 0, or -1 with a one-line reason in err. */
int vfio_parse_bdf(const char *arg, char bdf[VFIO_BDF_LEN], char *err, size_t errlen);

/* Check in the sysfs tree at root (normally "/sys") that function bdf can be passed through;
 * set *group to its IOMMU group. 0, or -1 with the reason and its fix in err. */
int vfio_sysfs_check(const char *root, const char *bdf, int *group, char *err, size_t errlen);

/* Open devdir/GROUP (normally /dev/vfio) read-write, close-on-exec: the fd, or -1 with the
 * reason and its fix in err. */
int vfio_group_open(const char *devdir, int group, char *err, size_t errlen);

#endif
