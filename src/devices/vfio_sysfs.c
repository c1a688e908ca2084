/* vfio_sysfs.c - finding a PCI function to pass through in sysfs (see the header). */
#include "vfio_sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"

#define SYSFS_DEVICES "/sys/bus/pci/devices/"

/* n hex digits at s; their value in *v. */
static bool hexn(const char *s, int n, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return false;
		*v = *v * 16 + (unsigned)(isdigit((unsigned char)s[i])
						  ? s[i] - '0'
						  : tolower((unsigned char)s[i]) - 'a' + 10);
	}
	return true;
}

int vfio_parse_bdf(const char *arg, char bdf[VFIO_BDF_LEN], char *err, size_t errlen)
{
	const char *s = arg;
	unsigned dom = 0, bus, dev, fn;
	size_t len;

	if (!strncmp(s, SYSFS_DEVICES, strlen(SYSFS_DEVICES)))
		s += strlen(SYSFS_DEVICES);
	len = strlen(s);
	if (len && s[len - 1] == '/')
		len--;
	if (len == 12 && s[4] == ':') {
		if (!hexn(s, 4, &dom))
			goto bad;
		s += 5;
		len -= 5;
	}
	if (len != 7 || s[2] != ':' || s[5] != '.' || !hexn(s, 2, &bus) || !hexn(s + 3, 2, &dev) ||
	    !hexn(s + 6, 1, &fn) || dev > 31 || fn > 7)
		goto bad;
	snprintf(bdf, VFIO_BDF_LEN, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
bad:
	return log_fmt(err, errlen,
		       "vfio=%s: not a PCI address; give DOMAIN:BUS:DEVICE.FUNCTION as lspci -D prints it "
		       "(0000:01:00.0) or its directory under " SYSFS_DEVICES,
		       arg);
}

/* The last component of the link at path (a driver's or a group's name), "" when path is no
 * link. -1 on a link too long. */
static int link_name(const char *path, char *out, size_t outlen)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	const char *base;

	out[0] = 0;
	if (n < 0)
		return 0;
	buf[n] = 0;
	base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (strlen(base) >= outlen)
		return -1;
	strcpy(out, base);
	return 0;
}

/* Drivers that leave a group viable: VFIO's own, pci-stub, and the port driver of bridges. */
static bool driver_ok(const char *drv)
{
	return !drv[0] || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") || !strcmp(drv, "pcieport");
}

int vfio_sysfs_check(const char *root, const char *bdf, int *group, char *err, size_t errlen)
{
	char path[PATH_MAX], drv[NAME_MAX + 1], grp[NAME_MAX + 1], *end;
	struct dirent *e;
	DIR *d;
	long g;

	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", root, bdf);
	if (access(path, F_OK) < 0)
		return log_fmt(err, errlen, "vfio=%s: no such PCI function (%s); lspci -D lists the host's",
			       bdf, path);
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", root, bdf);
	if (link_name(path, grp, sizeof(grp)) < 0 || !grp[0]) {
		/* An IOMMU found through the device tree (an arm64 SMMU) groups a function only
		 * when a driver first probes it, so an unbound function has no group there yet:
		 * binding it to vfio-pci is the next step on either kind of host. */
		snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, bdf);
		if (link_name(path, drv, sizeof(drv)) == 0 && !drv[0])
			return log_fmt(err, errlen,
				       "vfio=%s: the function has no IOMMU group and is bound to no driver; "
				       "bind it with: modprobe vfio-pci; echo vfio-pci > "
				       "/sys/bus/pci/devices/%s/driver_override; echo %s > "
				       "/sys/bus/pci/drivers_probe (an arm64 SMMU groups it then); if it "
				       "still has none the host runs without an IOMMU: boot with "
				       "intel_iommu=on (Intel) or amd_iommu=on, or describe the SMMU (arm64)",
				       bdf, bdf, bdf);
		return log_fmt(err, errlen,
			       "vfio=%s: the function has no IOMMU group: the host runs without an IOMMU; "
			       "enable VT-d/AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or "
			       "amd_iommu=on, or describe the SMMU in the firmware's tables (arm64)",
			       bdf);
	}
	errno = 0;
	g = strtol(grp, &end, 10);
	if (errno || *end || end == grp || g < 0 || g > INT_MAX)
		return log_fmt(err, errlen, "vfio=%s: IOMMU group '%s' is not a number", bdf, grp);
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", root, bdf);
	if (link_name(path, drv, sizeof(drv)) < 0)
		return log_fmt(err, errlen, "vfio=%s: cannot read its driver link", bdf);
	if (strcmp(drv, "vfio-pci")) {
		char unbind[2 * VFIO_BDF_LEN + 64] = "";

		if (drv[0])
			snprintf(unbind, sizeof(unbind), "echo %s > /sys/bus/pci/devices/%s/driver/unbind; ",
				 bdf, bdf);
		return log_fmt(
			err, errlen,
			"vfio=%s: the function is bound to %s, not vfio-pci; bind it with: modprobe vfio-pci; "
			"%secho vfio-pci > /sys/bus/pci/devices/%s/driver_override; echo %s > "
			"/sys/bus/pci/drivers_probe",
			bdf, drv[0] ? drv : "no driver", unbind, bdf, bdf);
	}
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%ld/devices", root, g);
	d = opendir(path);
	if (!d)
		return log_fmt(err, errlen, "vfio=%s: cannot list IOMMU group %ld (%s): %s", bdf, g, path,
			       strerror(errno));
	while ((e = readdir(d))) {
		char other[PATH_MAX + NAME_MAX + 16];

		if (e->d_name[0] == '.')
			continue;
		snprintf(other, sizeof(other), "%s/%s/driver", path, e->d_name);
		if (link_name(other, drv, sizeof(drv)) < 0 || !driver_ok(drv)) {
			log_fmt(err, errlen,
				"vfio=%s: IOMMU group %ld is not viable: %s in the same group is bound to %s; "
				"bind every function of the group to vfio-pci (ls /sys/kernel/iommu_groups/%ld/"
				"devices) or move the device to another slot",
				bdf, g, e->d_name, drv, g);
			closedir(d); /* after the message: e lives in d */
			return -1;
		}
	}
	closedir(d);
	*group = (int)g;
	return 0;
}

int vfio_group_open(const char *devdir, int group, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%d", devdir, group);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	switch (errno) {
	case ENOENT:
		return log_fmt(
			err, errlen,
			"%s: no such file: load vfio-pci (modprobe vfio-pci) and bind the device to it",
			path);
	case EACCES:
	case EPERM:
		return log_fmt(
			err, errlen,
			"%s: permission denied: run kvmbox as root or give its user the group's device "
			"(chown USER %s; /dev/vfio/vfio must be readable and writable too)",
			path, path);
	case EBUSY:
		return log_fmt(
			err, errlen,
			"%s: in use: IOMMU group %d is already open (another VMM, or a second vfio= of this VM in the same group)",
			path, group);
	default:
		return log_fmt(err, errlen, "%s: %s", path, strerror(errno));
	}
}
