# libFuzzer harnesses over the real code with KVM faked (tests/fuzz/fuzz_*.c). Included by the
# top Makefile. `make fuzz` builds build/fuzz/fuzz_<target> with clang, libFuzzer, ASan and
# UBSan: the library's sources are compiled again into build/fuzz/obj (the x86 flavour, plus the
# arm64 Image loader, which is plain parsing), so the normal build is untouched. `make
# fuzz-smoke` runs each target for FUZZ_SECONDS on a copy of its corpus (tests/fuzz/corpus/<target>)
# and fails on a crash; `make fuzz-seeds` writes the corpora again. DEVELOPERS.md says how to
# run them for hours.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_B       := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Isrc \
		-Itests/unit -Wno-gnu-variable-sized-type-not-at-end -D_GNU_SOURCE -DKVMBOX_VERSION='"$(VERSION)"' -pthread -MMD -MP \
		$(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_SRCS    := $(wildcard src/core/*.c src/devices/*.c src/virtio/*.c src/backends/*.c src/cli/*.c \
			   src/api/*.c src/arch/*.c src/arch/x86/*.c) src/arch/arm64/image.c
FUZZ_OBJS    := $(patsubst src/%.c,$(FUZZ_B)/obj/%.o,$(FUZZ_SRCS))
FUZZ_LIB     := $(FUZZ_B)/libkvmbox.a
# The unit tests' fakes (fake RAM, recorders, the fake virtio driver) and the harnesses' own helpers.
FUZZ_HELPERS := tests/fuzz/fuzz_util.c tests/fuzz/fake_kvm.c tests/fuzz/fake_vm.c tests/unit/fakes.c \
		tests/unit/vq_driver.c
FUZZ_HELPER_OBJS := $(patsubst tests/%.c,$(FUZZ_B)/obj/tests/%.o,$(FUZZ_HELPERS))
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_util.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(patsubst %,$(FUZZ_B)/fuzz_%,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-smoke fuzz-seeds
.PRECIOUS: $(FUZZ_B)/obj/tests/%.o
fuzz: $(FUZZ_BINS)

$(FUZZ_B)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_B)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/tests/fuzz/fuzz_%.o $(FUZZ_HELPER_OBJS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) -lz -lcmocka

# Each target on a copy of its corpus (the committed one stays as it is), stderr of the code under
# test discarded (-close_fd_mask=2: libFuzzer's and the sanitizers' reports still show).
fuzz-smoke: fuzz
	@FUZZ_B=$(FUZZ_B) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/smoke.sh $(FUZZ_TARGETS)

# Write the committed seed corpora again (tests/fuzz/make-seeds.sh); the snapshot and migration
# seeds come from the harnesses themselves.
fuzz-seeds: fuzz
	FUZZ_B=$(FUZZ_B) tests/fuzz/make-seeds.sh

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_HELPER_OBJS:.o=.d) $(FUZZ_B)/obj/tests/fuzz/*.d
