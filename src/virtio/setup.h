/* setup.h - put virtio device models on the VM's virtio transport (PCI today). */
#ifndef KVMBOX_VIRTIO_SETUP_H
#define KVMBOX_VIRTIO_SETUP_H

#include "../core/device.h"
#include "virtio.h"

struct vm;

/* Plug vd (NULL: its creation failed) into the VM's transport and add the transport device
 * to the VM. Returns vd, or NULL with an error printed (vd is then freed). The device types'
 * create functions end with this. */
struct virtio_dev *virtio_plug(struct vm *vm, struct virtio_dev *vd);

/* The virtio console for --console virtio, on vm->console_out; it registers
 * vm->console_in. 0 or -1 (printed). */
int virtio_create_console(struct vm *vm);

#endif
