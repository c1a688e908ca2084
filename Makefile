# kvmbox - a small KVM virtual machine monitor.
#   make            build/kvmbox
#   make static     build/kvmbox-static (fully static)
#   make static-musl build/musl/kvmbox-static (fully static against musl, small)
#   make deps       install the Debian packages in scripts/packages.txt that are missing
#   make check      all tests (unit, tiny test guests, Linux guests; see DEVELOPERS.md)
#   make bench      benchmarks, kvmtool side by side with KVMTOOL=path (see docs/PERFORMANCE.md)
#   make demo       boot a Debian kernel to a busybox shell
#   make format     clang-format the sources (make format-check: only report)
#   make SANITIZE=address,undefined ...   a sanitizer build in build/san-address-undefined/
#   make SANITIZE=thread ...              a ThreadSanitizer build in build/san-thread/

CROSS_COMPILE ?=
CC      := $(CROSS_COMPILE)gcc
AR      := $(CROSS_COMPILE)ar
ARCH    ?= x86
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
SANITIZE ?=

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Isrc -D_GNU_SOURCE -DKVMBOX_VERSION='"$(VERSION)"' -pthread -MMD -MP
LDFLAGS ?=
LDLIBS  += -pthread -luring -ljson-c -lxxhash -lseccomp

comma := ,
ifeq ($(SANITIZE),)
B := build
else
# Each sanitizer set builds in its own directory, so flavours never mix objects.
B := build/san-$(subst $(comma),-,$(SANITIZE))
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

.PHONY: install all static static-musl deps check check-unit check-guests check-linux bench demo clean guests unit \
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
# into the tree; it prints their -isystem/-L flags (MUSL_FLAGS below).
MUSL_CFLAGS := -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
static-musl:
	@scripts/deps.sh
	flags=$$(scripts/musl-deps.sh $(LDLIBS)) && CFLAGS="$(MUSL_CFLAGS)" LDFLAGS="-Wl,--gc-sections" \
		$(MAKE) B=build/musl CC=musl-gcc MUSL_FLAGS="$$flags" build/musl/kvmbox-static
ifneq ($(MUSL_FLAGS),)
CFLAGS  += $(MUSL_FLAGS)
LDFLAGS += $(MUSL_FLAGS)
endif

unit: $(UNIT_BINS)
$(B)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(UNIT_HELPERS:.c=.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_HELPERS) $(LIB) $(LDLIBS) -lcmocka

include tests/guests/guests.mk

deps:
	@scripts/deps.sh

# `make check` installs what is missing, builds every flavour the tiers use (plain, static,
# ASan+UBSan, TSan), then runs tests/check.sh. The sub-makes keep -j.
check:
	@scripts/deps.sh
	$(MAKE) $(B)/kvmbox $(B)/kvmbox-static unit guests
	$(MAKE) SANITIZE=address,undefined build/san-address-undefined/kvmbox unit
	$(MAKE) SANITIZE=thread unit
	tests/check.sh all

check-unit: unit
	KVMBOX_BUILD=$(B) tests/check.sh unit
check-guests: $(B)/kvmbox guests
	KVMBOX_BUILD=$(B) tests/check.sh guests
check-linux: $(B)/kvmbox-static
	tests/check.sh linux

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
	'tests/guests/lib/*.[ch]' 'tests/guests/tools/*.c' 2>/dev/null)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the binary (the static one when built, as it
# runs anywhere) and the man pages.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
install: $(B)/kvmbox
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 755 $(B)/kvmbox $(DESTDIR)$(BINDIR)/kvmbox
	install -m 644 docs/kvmbox.1 $(DESTDIR)$(MANDIR)/man1/kvmbox.1
	install -m 644 docs/kvmbox-api.7 $(DESTDIR)$(MANDIR)/man7/kvmbox-api.7

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(B)/obj/main.d
