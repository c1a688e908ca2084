#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../core/log.h"

int tap_set_offload(int fd, unsigned flags)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags);
}

int tap_get_persist(int fd, bool *persistent)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -1;
	*persistent = ifr.ifr_flags & IFF_PERSIST;
	return 0;
}

int tap_set_persist(int fd, bool persistent)
{
	return ioctl(fd, TUNSETPERSIST, (unsigned long)persistent);
}

static void tap_error(const char *name, const char *what, int err)
{
	if (err == EPERM || err == EACCES)
		log_error("tap %s: permission denied; kvmbox needs CAP_NET_ADMIN (run as root or give "
			  "the binary cap_net_admin)",
			  name);
	else if (err == EBUSY)
		log_error("tap %s: %s: device busy; another process has it open (or it is not a tap: "
			  "check `ip -d link show %s`)",
			  name, what, name);
	else if (err == EINVAL)
		log_error("tap %s: %s: invalid argument; is %s an existing tun (not tap) device?", name, what,
			  name);
	else
		log_error("tap %s: %s: %s", name, what, strerror(err));
}

int tap_open(const char *name, char *ifname_out, bool *vnet_hdr_ok)
{
	struct ifreq ifr;
	int fd, hdr_len = TAP_VNET_HDR_LEN;

	*vnet_hdr_ok = false;
	if (!name || !*name || strlen(name) >= IFNAMSIZ) {
		log_error("tap '%s': bad interface name; use 1 to %d characters", name ? name : "",
			  IFNAMSIZ - 1);
		return -1;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT || e == ENODEV || e == ENXIO)
			log_error("tap %s: /dev/net/tun missing; load the tun module (modprobe tun)", name);
		else
			tap_error(name, "open /dev/net/tun", e);
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		tap_error(name, "TUNSETIFF", errno);
		close(fd);
		return -1;
	}
	/* Very old kernels accept IFF_VNET_HDR but not the v1 header size:
	 * report it and let the caller decide. */
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) == 0)
		*vnet_hdr_ok = true;
	/* No offloads until the guest negotiates its GUEST_* features: until
	 * then the kernel hands us plain, fully checksummed frames. */
	if (tap_set_offload(fd, 0) < 0) {
		tap_error(name, "TUNSETOFFLOAD", errno);
		close(fd);
		return -1;
	}
	if (ifname_out)
		snprintf(ifname_out, IFNAMSIZ, "%s", ifr.ifr_name);
	return fd;
}
