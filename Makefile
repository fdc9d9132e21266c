# failsteer build. `make` builds everything, `make check` runs every test (as root),
# `make demo` runs the failover story, `make bench` the benchmarks.
ARCH ?= $(shell uname -m)
BUILD ?= build
CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
PREFIX ?= /usr/local
DESTDIR ?=

VMLINUX_DIR := vmlinux-headers/$(ARCH)
BPF_ARCH := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(ARCH)))

CFLAGS ?= -O2 -g
override CFLAGS += -Wall -Wextra -Werror -std=gnu11 -Iinclude -Iuser -I$(BUILD)/include -D_GNU_SOURCE
LDLIBS := -lbpf -lelf -lz -linih -lmicrohttpd -lm
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(VMLINUX_DIR) -Iinclude -Ibpf \
	-Wall -Werror

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/include/%.skel.h,$(BPF_SRCS))
BPF_HDRS := $(wildcard bpf/lib/*.h) $(wildcard include/failsteer/*.h)

# User code: everything but main.c also links into the tests.
USER_SRCS := $(filter-out user/main.c,$(wildcard user/*.c))
USER_HDRS := $(wildcard user/*.h) $(wildcard include/failsteer/*.h)
USER_OBJS := $(patsubst user/%.c,$(BUILD)/obj/%.o,$(USER_SRCS))
USER_SAN_OBJS := $(patsubst user/%.c,$(BUILD)/san/%.o,$(USER_SRCS))

UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
BPF_TESTS := $(patsubst tests/bpf/%.c,%,$(wildcard tests/bpf/test_*.c))
TEST_LIB := $(wildcard tests/lib/*.c)
TEST_HDRS := $(wildcard tests/lib/*.h)

DEPS_STAMP := $(BUILD)/.deps-build

.PHONY: all deps check check-unit check-bpf check-e2e demo bench clean install vmlinux
all: $(if $(wildcard user/main.c),$(BUILD)/failsteer $(BUILD)/failsteer-san) tests

$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh build
	@mkdir -p $(dir $@) && touch $@

deps: $(DEPS_STAMP)

$(VMLINUX_DIR)/vmlinux.h:
	@echo "no $@ for $(ARCH): run 'make vmlinux' on a kernel with BTF to generate it" >&2; exit 1

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(VMLINUX_DIR)/vmlinux.h | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(dir $@)
	$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/%.o: user/%.c $(USER_HDRS) $(SKELS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: user/%.c $(USER_HDRS) $(SKELS) | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(BUILD)/failsteer: user/main.c $(USER_OBJS)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The same binary under ASan/UBSan, for the CLI tests that need no root.
$(BUILD)/failsteer-san: user/main.c $(USER_SAN_OBJS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $^ -o $@ $(LDLIBS)

# Unit tests (no root): plain and sanitized builds.
$(BUILD)/tests/unit/%: tests/unit/%.c $(USER_OBJS) $(TEST_LIB) $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/lib $< $(TEST_LIB) $(USER_OBJS) -o $@ $(LDLIBS) -lcmocka

$(BUILD)/tests/unit-san/%: tests/unit/%.c $(USER_SAN_OBJS) $(TEST_LIB) $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Itests/lib $< $(TEST_LIB) $(USER_SAN_OBJS) -o $@ $(LDLIBS) -lcmocka

# BPF tests (root): run the real programs with bpf_prog_test_run.
$(BUILD)/tests/bpf/%: tests/bpf/%.c $(USER_OBJS) $(TEST_LIB) $(TEST_HDRS) $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/lib $< $(TEST_LIB) $(USER_OBJS) -o $@ $(LDLIBS) -lcmocka

# The same under ASan/UBSan: the userspace map code they drive (bulk access, the table
# walk, the view) runs sanitized too.
$(BUILD)/tests/bpf-san/%: tests/bpf/%.c $(USER_SAN_OBJS) $(TEST_LIB) $(TEST_HDRS) $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Itests/lib $< $(TEST_LIB) $(USER_SAN_OBJS) -o $@ $(LDLIBS) -lcmocka

$(BUILD)/bench/bench_bpf: scripts/bench_bpf.c $(USER_OBJS) $(TEST_LIB) $(TEST_HDRS) $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/lib $< $(TEST_LIB) $(USER_OBJS) -o $@ $(LDLIBS)

# The benchmark's own HTTP server and load client (C: the Python ones cannot saturate).
$(BUILD)/bench/bench_%: scripts/bench_%.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ -lpthread
BENCH_BINS := $(addprefix $(BUILD)/bench/,bench_bpf bench_server bench_client)

UNIT_BINS := $(addprefix $(BUILD)/tests/unit/,$(UNIT_TESTS)) \
	$(addprefix $(BUILD)/tests/unit-san/,$(UNIT_TESTS))
BPF_BINS := $(addprefix $(BUILD)/tests/bpf/,$(BPF_TESTS)) \
	$(addprefix $(BUILD)/tests/bpf-san/,$(BPF_TESTS))
tests: $(UNIT_BINS) $(BPF_BINS)

check: all $(BENCH_BINS)
	@scripts/install-deps.sh check
	@scripts/run-tests.sh $(BUILD)

check-unit: all
	@scripts/run-tests.sh $(BUILD) unit

check-bpf: all
	@scripts/run-tests.sh $(BUILD) bpf

check-e2e: all $(BENCH_BINS)
	@scripts/install-deps.sh check
	@scripts/run-tests.sh $(BUILD) e2e

demo: $(BUILD)/failsteer
	@scripts/install-deps.sh check
	@scripts/demo.sh $(BUILD)

# Bounded: bench.sh trims repetitions to finish in about 9.5 min; past 10 it is stopped
# (its teardown still runs) and the target fails loudly.
bench: $(BUILD)/failsteer $(BENCH_BINS)
	@scripts/install-deps.sh bench
	@timeout --foreground -k 20 600 scripts/bench.sh $(BUILD) || { rc=$$?; \
		[ $$rc -ne 124 ] || echo "bench: FAILED: over the 10-minute bound" >&2; exit $$rc; }

vmlinux:
	scripts/gen-vmlinux.sh

# The BPF object is embedded in the binary (skeleton), so the binary is all that runs.
# The unit's paths follow PREFIX and SYSCONFDIR; the real config is left to the operator.
# A system prefix (/usr, /usr/local) keeps its configuration in /etc, a private one in
# PREFIX/etc.
SYSCONFDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/failsteer
install: $(BUILD)/failsteer
	install -D -m 0755 $(BUILD)/failsteer $(DESTDIR)$(PREFIX)/sbin/failsteer
	install -D -m 0644 deploy/failsteer.conf.example $(DESTDIR)$(SYSCONFDIR)/failsteer/failsteer.conf.example
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/sbin/failsteer|$(PREFIX)/sbin/failsteer|g' -e 's|/etc/failsteer/|$(SYSCONFDIR)/failsteer/|g' \
		-e 's|/usr/share/doc/failsteer/|$(DOCDIR)/|g' deploy/systemd/failsteer.service \
		>$(DESTDIR)$(UNITDIR)/failsteer.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/failsteer.service
	install -D -m 0644 docs/operations.md $(DESTDIR)$(DOCDIR)/operations.md

clean:
	rm -rf $(BUILD)
