# Tiny freestanding x86_64 test guests for tests/guests/run.sh.
# Included by the top Makefile; `make guests` builds build/guests/<name>.elf,
# PVH-bootable ELF images loaded at 1 MiB, and the runner's helpers in
# build/guests/tools/.
# Guests are always x86_64, whatever CROSS_COMPILE says.

GUEST_CC      ?= gcc
GUEST_OBJDUMP ?= objdump
GUEST_SRC     := tests/guests
GUEST_OUT     := build/guests
GUEST_NAMES   := serial rtc pit lapic_timer smp poweroff reset triple_fault hostile_io idle reboots \
		 virtio_hostile dirtier hostile_smp
GUEST_ELFS    := $(patsubst %,$(GUEST_OUT)/%.elf,$(GUEST_NAMES))
GUEST_LIB_OBJS := $(GUEST_OUT)/obj/start.o $(GUEST_OUT)/obj/lib.o

# General registers only: the nested KVM on the test hosts emulates guest
# kernel code and stops on any SSE/AVX instruction.
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-ffreestanding -fno-pic -fno-pie -nostdlib -mgeneral-regs-only -march=x86-64 \
	-mno-red-zone -fno-stack-protector -fno-builtin -fno-asynchronous-unwind-tables \
	-fcf-protection=none -fno-tree-loop-distribute-patterns -m64 \
	-I$(GUEST_SRC)/lib -MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,$(GUEST_SRC)/guest.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

# Instructions the emulated nested KVM cannot execute.
GUEST_FORBIDDEN := %[xy]mm|cmpxchg16b|popcnt|rdtscp|xsave|xrstor|fxsave|fxrstor

# Host-side helpers of the runner (tests/guests/tools/*.c): static, so the same
# binaries run here and in the emulated host's initramfs (busybox, no libc).
GUEST_TOOLS_CC ?= $(GUEST_CC)
GUEST_TOOL_NAMES := deadline sigdisp ptyrun apiclient freeport passcheck bytes dirtylog
GUEST_TOOLS   := $(patsubst %,$(GUEST_OUT)/tools/%,$(GUEST_TOOL_NAMES))
GUEST_TOOLS_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -Wshadow -static
GUEST_TOOLS_LIBS_apiclient := -ljson-c

guests: $(GUEST_ELFS) $(GUEST_TOOLS)

$(GUEST_OUT)/tools/%: $(GUEST_SRC)/tools/%.c
	@mkdir -p $(dir $@)
	$(GUEST_TOOLS_CC) $(GUEST_TOOLS_CFLAGS) -o $@ $< $(GUEST_TOOLS_LIBS_$*)

.SECONDARY: $(patsubst %,$(GUEST_OUT)/obj/test_%.o,$(GUEST_NAMES)) $(GUEST_LIB_OBJS)

$(GUEST_OUT)/obj/%.o: $(GUEST_SRC)/lib/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/obj/%.o: $(GUEST_SRC)/lib/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/obj/test_%.o: $(GUEST_SRC)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/%.elf: $(GUEST_OUT)/obj/test_%.o $(GUEST_LIB_OBJS) $(GUEST_SRC)/guest.ld
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@.tmp $< $(GUEST_LIB_OBJS)
	@if $(GUEST_OBJDUMP) -d $@.tmp | grep -Eq '$(GUEST_FORBIDDEN)'; then \
		echo "$@: uses instructions the emulated KVM cannot run:"; \
		$(GUEST_OBJDUMP) -d $@.tmp | grep -E '$(GUEST_FORBIDDEN)' | head; \
		rm -f $@.tmp; exit 1; fi
	@mv $@.tmp $@

-include $(wildcard $(GUEST_OUT)/obj/*.d)
