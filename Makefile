# appd -- top-level build (GNU make).
#
#   make              build/appd: static, stripped, musl-gcc -Os
#   make check        all + unit + integration (the full test suite)
#   make deps         install missing build/test dependencies (Debian/Ubuntu)
#   make help         list all targets
#
# BearSSL comes from Debian's source package via third_party/fetch-bearssl.sh
# into .cache/bearssl/src; set BEARSSL_SRC=dir to use another tree (no fetch).

# ---- toolchain ---------------------------------------------------------------
CC_MUSL ?= musl-gcc
ifeq ($(origin CC),default)
CC := gcc
endif
AR ?= ar
PYTHON ?= /usr/bin/python3
JSMN_H ?= /usr/include/jsmn.h

B := build

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
MUSL_CFLAGS  ?= -Oz -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
MUSL_LDFLAGS ?= -static -s -Wl,--gc-sections -no-pie -Wl,-z,noseparate-code -Wl,-z,norelro
# sanitizer build (tests); UB aborts instead of just printing
SAN          := -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_CFLAGS  ?= -g -O1 $(SAN) -fno-omit-frame-pointer
ASAN_LDFLAGS ?= $(SAN)
# fixtures: plain gcc helpers for the integration tests
FIX_CFLAGS   ?= -g -O1

# BearSSL itself, built once per compiler with its own warning set
BR_CFLAGS_MUSL ?= -W -Wall -Oz -DBR_USE_GETENTROPY=1 -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
BR_CFLAGS_GCC  ?= -W -Wall -g -O1 -DBR_USE_GETENTROPY=1
BR_LIB_MUSL := $(B)/bearssl/libbearssl.a
BR_LIB_GCC  := $(B)/bearssl-gcc/libbearssl.a

# ---- sources -------------------------------------------------------------------
ifeq ($(shell uname -s),Linux)
PLATFORM_EXCLUDE := $(wildcard platform/*kqueue*.c platform/*_bsd.c)
else
PLATFORM_EXCLUDE := $(wildcard platform/*epoll*.c platform/*_linux.c)
endif
CORE_SRCS := $(wildcard core/*.c core/*/*.c)
PLAT_SRCS := $(filter-out $(PLATFORM_EXCLUDE),$(wildcard platform/*.c))
CMD_SRCS  := $(wildcard cmd/*.c)
APPD_SRCS := $(CORE_SRCS) $(PLAT_SRCS) $(CMD_SRCS)

MUSL_OBJS     := $(APPD_SRCS:%.c=$(B)/musl/%.o)
ASAN_OBJS     := $(APPD_SRCS:%.c=$(B)/asan/%.o)
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

# ---- top-level targets ----------------------------------------------------------
.DEFAULT_GOAL := all
.PHONY: all asan fixtures unit integration check deps demo demo-run bench size clean \
        distclean fetch help FORCE

all: $(B)/appd
asan: $(B)/asan/appd
fixtures: $(FIXTURES)
# `make check` and `make demo` install what is missing first (quiet when
# everything is there), so a fresh machine needs no third command.
check:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@$(MAKE) --no-print-directory all unit integration

help:
	@echo 'targets: all (build/appd) asan unit fixtures integration check deps'
	@echo '         demo bench size fetch clean distclean'
	@echo 'vars:    BEARSSL_SRC=dir CC_MUSL=$(CC_MUSL) CC=$(CC) PYTHON=$(PYTHON)'

# ---- third-party: BearSSL and jsmn ----------------------------------------------
fetch: $(BEARSSL_DEP)

ifeq ($(BEARSSL_DEP),$(BEARSSL_CACHE)/src/.appd-verified)
$(BEARSSL_DEP):
	sh third_party/fetch-bearssl.sh $(BEARSSL_CACHE) >/dev/null
endif

# The archive recipe always runs the sub-make (cheap when up to date); the
# archive's mtime only changes when something was recompiled.
BR_SUBMAKE = $(MAKE) --no-print-directory -f third_party/bearssl.mk \
    $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(NPROC)) \
    SRC=$(BEARSSL_SRC) AR=$(AR)
NPROC := $(shell nproc 2>/dev/null || echo 2)

$(BR_LIB_MUSL): $(BEARSSL_DEP) FORCE
	+@$(BR_SUBMAKE) OUT=$(@D) CC=$(CC_MUSL) BR_CFLAGS='$(BR_CFLAGS_MUSL)'

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
# $(B)/<variant>/.flags is rewritten only when its text changes.
define flags-rule
$(B)/$(1)/.flags: FORCE
	@mkdir -p $$(@D)
	@echo '$(2)' | cmp -s - $$@ 2>/dev/null || echo '$(2)' > $$@
endef
$(eval $(call flags-rule,musl,$(CC_MUSL) $(CSTD) $(MUSL_CFLAGS) $(INCLUDES) $(MUSL_LDFLAGS)))
$(eval $(call flags-rule,asan,$(CC) $(CSTD) $(ASAN_CFLAGS) $(INCLUDES) $(ASAN_LDFLAGS)))
$(eval $(call flags-rule,fixtures,$(CC) $(CSTD) $(FIX_CFLAGS)))

# ---- build/appd: static musl ---------------------------------------------------
$(B)/musl/%.o: %.c $(B)/musl/.flags | $(HDRS)
	@mkdir -p $(@D)
	$(CC_MUSL) $(CSTD) $(MUSL_CFLAGS) $(INCLUDES) $(DEPFLAGS) -c $< -o $@

$(B)/appd: $(MUSL_OBJS) $(BR_LIB_MUSL) $(B)/musl/.flags
	$(if $(MUSL_OBJS),,$(error no sources in core/ cmd/ platform/))
	$(CC_MUSL) $(MUSL_LDFLAGS) -o $@ $(MUSL_OBJS) $(BR_LIB_MUSL)

# the same link unstripped (same layout), for symbol-level footprint work
$(B)/appd.debug: $(MUSL_OBJS) $(BR_LIB_MUSL) $(B)/musl/.flags
	$(CC_MUSL) $(filter-out -s,$(MUSL_LDFLAGS)) -o $@ $(MUSL_OBJS) $(BR_LIB_MUSL)

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
integration: $(B)/appd $(B)/asan/appd $(FIXTURES)
	@set -e; for bin in $(abspath $(B)/appd) $(abspath $(B)/asan/appd); do \
	  echo "== integration with $$bin"; \
	  echo '$(TEST_ENV) APPD='"$$bin"' $(PYTEST)'; \
	  rc=0; $(TEST_ENV) APPD=$$bin $(PYTEST) || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'integration: FAILED: pytest collected no tests' >&2; exit 5; \
	  elif [ $$rc -ne 0 ]; then echo "integration: FAILED with $$bin (pytest exit $$rc)" >&2; exit $$rc; fi; \
	done

# ---- other entry points ---------------------------------------------------------------
run-script = if [ -x $(1) ]; then $(TEST_ENV) ./$(1); else $(TEST_ENV) sh $(1); fi

demo:
	@$(MAKE) --no-print-directory deps DEPS_QUIET=1
	@$(MAKE) --no-print-directory demo-run

demo-run: $(B)/appd $(FIXTURES)
	@$(call run-script,tests/demo.sh)

bench: $(B)/appd $(FIXTURES)
	@$(call run-script,bench/run.sh)

size: $(B)/appd
	@size $< 2>/dev/null || true
	@echo "$<: $$(stat -c %s $<) bytes"

deps:
	@DEPS_QUIET=$(DEPS_QUIET) sh third_party/deps.sh

clean:
	rm -rf $(B)

distclean: clean
	rm -rf .cache

FORCE:

-include $(MUSL_OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(UNIT_BINS:=.d) $(UNIT_HOBJS:.o=.d) \
         $(FIXTURES:=.d)
