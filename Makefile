# kvmbox - a small KVM virtual machine monitor.
#   make            build/kvmbox
#   make static     build/kvmbox-static (fully static)
#   make check      all tests (unit, test guests on /dev/kvm, Linux in the emulated host)
#   make bench      benchmarks (see docs/PERFORMANCE.md)
#   make demo       boot a Debian kernel to a busybox shell

CROSS_COMPILE ?=
CC      := $(CROSS_COMPILE)gcc
AR      := $(CROSS_COMPILE)ar
ARCH    ?= x86
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Isrc -D_GNU_SOURCE -DKVMBOX_VERSION='"$(VERSION)"' -pthread -MMD -MP
LDFLAGS ?=
LDLIBS  += -pthread -luring -ljson-c -lxxhash

B := build
SRCS := $(wildcard src/core/*.c src/devices/*.c src/virtio/*.c src/backends/*.c \
                   src/cli/*.c src/api/*.c src/arch/$(ARCH)/*.c)
OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(SRCS))
LIB  := $(B)/libkvmbox.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
# Shared fixtures (fake RAM, recorders, fake virtio driver) linked into every unit test.
UNIT_HELPERS := tests/unit/fakes.c tests/unit/vq_driver.c

.PHONY: all static check check-unit check-guests check-linux bench demo clean guests
all: $(B)/kvmbox

$(B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(B)/obj/main.o: src/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/kvmbox: $(B)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

static: $(B)/kvmbox-static
$(B)/kvmbox-static: $(B)/obj/main.o $(LIB)
	$(CC) $(LDFLAGS) -static -o $@ $^ $(LDLIBS)
	$(CROSS_COMPILE)strip -o $@.stripped $@ && mv $@.stripped $@

$(B)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(UNIT_HELPERS:.c=.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(UNIT_HELPERS) $(LIB) $(LDLIBS) -lcmocka

include tests/guests/guests.mk

check: $(B)/kvmbox $(B)/kvmbox-static $(UNIT_BINS) guests
	tests/check.sh all

check-unit: $(UNIT_BINS)
	tests/check.sh unit
check-guests: $(B)/kvmbox guests
	tests/check.sh guests
check-linux: $(B)/kvmbox-static
	tests/check.sh linux

bench: $(B)/kvmbox $(B)/kvmbox-static guests
	bench/lifecycle.sh
	bench/run.sh

demo: $(B)/kvmbox $(B)/kvmbox-static
	tests/linux/demo.sh

clean:
	rm -rf $(B)

-include $(OBJS:.o=.d) $(B)/obj/main.d
