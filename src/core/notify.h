/* notify.h - systemd's readiness protocol (sd_notify) without libsystemd: a datagram with
 * "READY=1" or "STOPPING=1" to the unix socket $NOTIFY_SOCKET names (a path, or '@' for an
 * abstract one), so a Type=notify unit knows when kvmbox is up. */
#ifndef KVMBOX_NOTIFY_H
#define KVMBOX_NOTIFY_H

/* A datagram socket connected to $NOTIFY_SOCKET, opened now (before a sandbox would forbid
 * it). The fd, -1 when the variable is unset (not run by systemd) or unusable (a warning
 * printed). */
int notify_open(void);
/* Send msg ("READY=1") on fd (nothing when fd < 0). A failure is a warning, never fatal. */
void notify_send(int fd, const char *msg);

#endif
