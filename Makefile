# kvmbox - a small KVM virtual machine monitor.
#   make            build/kvmbox
#   make static     build/kvmbox-static (fully static)
#   make static-musl build/musl/kvmbox-static (fully static against musl, small)
#   make deps       install the Debian packages in scripts/packages.txt that are missing
#   make check      all tests (unit, tiny test guests, the musl build, Linux guests; see DEVELOPERS.md)
#   make bench      benchmarks, kvmtool side by side with KVMTOOL=path (see docs/PERFORMANCE.md)
#   make demo       boot a Debian kernel to a busybox shell
#   make fuzz       libFuzzer harnesses in build/fuzz/ (make fuzz-smoke: 30 s each; see DEVELOPERS.md)
#   make format     clang-format the sources (make format-check: only report)
#   make SANITIZE=address,undefined ...   a sanitizer build in build/san-address-undefined/
#   make SANITIZE=thread ...              a ThreadSanitizer build in build/san-thread/
#   make ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-   build/arm64/kvmbox (and static) on x86_64
#
# ARCH (x86 or arm64) defaults to this machine's (uname -m). The machine's own architecture builds
# in build/, another one in build/$(ARCH)/, so a cross build never mixes objects with a native one.

CROSS_COMPILE ?=
CC      := $(CROSS_COMPILE)gcc
AR      := $(CROSS_COMPILE)ar
NATIVE_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86)
ARCH    ?= $(NATIVE_ARCH)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
SANITIZE ?=

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Isrc -D_GNU_SOURCE -DKVMBOX_VERSION='"$(VERSION)"' -pthread -MMD -MP
LDFLAGS ?=
LDLIBS  += -pthread -luring -ljson-c -lxxhash -lseccomp -lsodium -linih # -linih: pkg-config --libs inih
ifeq ($(ARCH),arm64)
LDLIBS  += -lfdt -lz # the device tree (libfdt), gzip-compressed kernel Images (zlib)
endif

comma := ,
BUILD := $(if $(filter $(NATIVE_ARCH),$(ARCH)),build,build/$(ARCH))
ifeq ($(SANITIZE),)
B := $(BUILD)
else
# Each sanitizer set builds in its own directory, so flavours never mix objects.
B := $(BUILD)/san-$(subst $(comma),-,$(SANITIZE))
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

SRCS := $(wildcard src/core/*.c src/devices/*.c src/virtio/*.c src/backends/*.c \
                   src/cli/*.c src/api/*.c src/arch/*.c src/arch/$(ARCH)/*.c)
OBJS := $(patsubst src/%.c,$(B)/obj/%.o,$(SRCS))
LIB  := $(B)/libkvmbox.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))
# Shared fixtures (fake RAM, recorders, fake virtio driver) linked into every unit test.
UNIT_HELPERS := tests/unit/fakes.c tests/unit/vq_driver.c

.PHONY: install all static static-musl deps check check-unit check-guests check-musl check-linux check-linux-arm64 arm64-tiny bench \
	demo clean guests unit \
	format format-check
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
ifneq ($(SANITIZE),)
	$(error the sanitizers need the dynamic build: make SANITIZE=$(SANITIZE) without static)
endif
	@# --fatal-warnings: glibc warns when a static program calls what needs its shared NSS
	@# modules at run time (getaddrinfo, getpwnam...); the static binary must run without a libc.
	$(CC) $(LDFLAGS) -static -Wl,--fatal-warnings -o $@ $^ $(LDLIBS)
	$(CROSS_COMPILE)strip -o $@.stripped $@ && mv $@.stripped $@

# make static-musl: build/musl/kvmbox-static, fully static against musl (Debian's musl-tools) and
# built for size. The libraries of LDLIBS, which Debian builds only for glibc, are built from their
# Debian source packages by scripts/musl-deps.sh into ~/.cache/kvmbox/musl (KVMBOX_CACHE), never
# into the tree; it prints their -isystem/-L flags (MUSL_FLAGS below). Those name the libraries'
# directories, which change with their version and build recipe: when they differ from the last
# build's (build/musl/flags), kvmbox is compiled and linked again against the new ones.
# -flto=auto: kvmbox's own code optimised for size as a whole (docs/PERFORMANCE.md).
MUSL_CFLAGS := -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables \
	-flto=auto
static-musl:
	@scripts/deps.sh
	flags=$$(scripts/musl-deps.sh $(LDLIBS)) && \
	if ! printf '%s\n' "$$flags" | cmp -s - build/musl/flags; then \
		rm -rf build/musl && mkdir -p build/musl && printf '%s\n' "$$flags" >build/musl/flags; \
	fi && \
	CFLAGS="$(MUSL_CFLAGS)" LDFLAGS="-Wl,--gc-sections -flto=auto" \
		$(MAKE) B=build/musl CC=musl-gcc MUSL_FLAGS="$$flags" build/musl/kvmbox-static
# NO_INIH=1: a build without libinih (a system that lacks it); --config is then refused with
# one line (src/cli/config_file.c). make static-musl has it: when libinih's Debian source cannot
# be fetched, its glibc archive serves (scripts/musl-deps.sh, glibc_archive).
ifeq ($(NO_INIH),1)
CFLAGS  += -DKVMBOX_NO_INIH
LDLIBS  := $(filter-out -linih,$(LDLIBS))
endif
ifneq ($(MUSL_FLAGS),)
CFLAGS  += $(MUSL_FLAGS)
LDFLAGS += $(MUSL_FLAGS)
endif

# The link switch's micro-benchmark (docs/PERFORMANCE.md, Links between VMs).
$(B)/bench/link_switch: bench/link_switch.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

unit: $(UNIT_BINS)
$(B)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(UNIT_HELPERS:.c=.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_HELPERS) $(LIB) $(LDLIBS) -lcmocka

# The arm64 unit tests (tests/unit/test_arm64_*.c) run on every host: they link the arm64 files
# that need no KVM (device tree, Image loading) themselves when the library is another arch's.
# Debian's libfdt-dev is not co-installable across architectures, so an x86_64 host has
# libfdt-dev:arm64 (for the cross build) and links its own libfdt1 by soname.
ARM64_PURE_SRCS := src/arch/arm64/fdt.c src/arch/arm64/image.c
ifeq ($(ARCH),arm64)
ARM64_TEST_SRCS :=
ARM64_TEST_LIBS :=
else
FDT_HOST_LIB ?= -l:libfdt.so.1
ARM64_TEST_SRCS := $(ARM64_PURE_SRCS)
ARM64_TEST_LIBS := $(FDT_HOST_LIB) -lz
endif
$(B)/tests/test_arm64_%: tests/unit/test_arm64_%.c $(ARM64_TEST_SRCS) $(wildcard src/arch/arm64/*.h) \
		$(UNIT_HELPERS) $(UNIT_HELPERS:.c=.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(ARM64_TEST_SRCS) $(UNIT_HELPERS) $(LIB) $(LDLIBS) \
		$(ARM64_TEST_LIBS) -lcmocka

include tests/guests/guests.mk
include tests/fuzz/fuzz.mk

deps:
	@scripts/deps.sh

# `make check` installs what is missing, builds every flavour the tiers use (plain, static,
# ASan+UBSan, TSan, and the arm64 static binary with the tiny arm64 guests for the arm64 tier),
# then runs tests/check.sh. The sub-makes keep -j.
# make check builds its flavours with a job per CPU (CHECK_JOBS): about two minutes less on two.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
check:
	@scripts/deps.sh
	$(MAKE) -j$(CHECK_JOBS) $(B)/kvmbox $(B)/kvmbox-static unit guests
	$(MAKE) -j$(CHECK_JOBS) SANITIZE=address,undefined build/san-address-undefined/kvmbox unit
	$(MAKE) -j$(CHECK_JOBS) SANITIZE=thread unit
	$(MAKE) -j$(CHECK_JOBS) arm64-tiny
	$(MAKE) -j$(CHECK_JOBS) ARCH=arm64 CROSS_COMPILE=$(ARM64_CROSS) $(ARM64_BUILD)/kvmbox-static
	tests/check.sh all

check-unit: unit
	KVMBOX_BUILD=$(B) tests/check.sh unit
check-guests: $(B)/kvmbox guests
	KVMBOX_BUILD=$(B) tests/check.sh guests
check-linux: $(B)/kvmbox-static
	tests/check.sh linux
# The musl tier (tests/check.sh: it runs make static-musl itself, and SKIPs when Debian's sources
# cannot be fetched); $(B)/kvmbox-static receives its tiny guests' migrations and snapshots.
check-musl: guests
	KVMBOX_BUILD=$(B) tests/check.sh musl
# The arm64 Linux tier in an emulated arm64 host (tests/linux/arm64/), from any host.
ARM64_BUILD := $(if $(filter arm64,$(NATIVE_ARCH)),build,build/arm64)
ARM64_CROSS ?= $(if $(filter arm64,$(NATIVE_ARCH)),,aarch64-linux-gnu-)
# Tiny arm64 test guests (tests/linux/arm64/tiny/*.S): raw Images run in the emulated arm64 host.
ARM64_TINY := $(patsubst tests/linux/arm64/tiny/%.S,$(ARM64_BUILD)/tiny/%.img,$(wildcard tests/linux/arm64/tiny/*.S))
$(ARM64_BUILD)/tiny/%.img: tests/linux/arm64/tiny/%.S tests/linux/arm64/tiny/header.inc
	@mkdir -p $(dir $@)
	$(ARM64_CROSS)gcc -c -o $(@:.img=.o) $<
	$(ARM64_CROSS)objcopy -O binary -j .text $(@:.img=.o) $@
arm64-tiny: $(ARM64_TINY)
check-linux-arm64: arm64-tiny
	$(MAKE) ARCH=arm64 CROSS_COMPILE=$(ARM64_CROSS) $(ARM64_BUILD)/kvmbox-static
	tests/check.sh linux-arm64

# make bench [KVMTOOL=path]: kvmtool (a static lkvm) boots the same guest side by side when one is
# given or on PATH (lkvm-static, lkvm). The musl build is measured too when it can be built.
KVMTOOL ?=
bench:
	@scripts/deps.sh
	$(MAKE) $(B)/kvmbox $(B)/kvmbox-static guests
	$(MAKE) static-musl || echo "bench: make static-musl failed: its column is left out" >&2
	bench/lifecycle.sh
	KVMTOOL="$(KVMTOOL)" bench/run.sh

demo:
	@scripts/deps.sh
	$(MAKE) $(B)/kvmbox $(B)/kvmbox-static
	tests/linux/demo.sh

FORMAT_FILES = $(shell git ls-files 'src/*.[ch]' 'tests/unit/*.[ch]' 'tests/guests/*.[ch]' \
	'tests/guests/lib/*.[ch]' 'tests/guests/tools/*.c' 'tests/fuzz/*.[ch]' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary (the static one when built, as it
# runs anywhere), the man pages and the systemd units (systemd/: kvmbox.service for
# `kvmbox up /etc/kvmbox/system.conf`, kvmbox@.service for `kvmbox run --config /etc/kvmbox/%i.conf`),
# whose ExecStart names $(BINDIR)/kvmbox.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
install: $(B)/kvmbox
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 $(B)/kvmbox $(DESTDIR)$(BINDIR)/kvmbox
	install -m 644 docs/kvmbox.1 $(DESTDIR)$(MANDIR)/man1/kvmbox.1
	install -m 644 docs/kvmbox-api.7 $(DESTDIR)$(MANDIR)/man7/kvmbox-api.7
	for u in kvmbox.service kvmbox@.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g' systemd/$$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(B)/obj/main.d
