# bearssl.mk -- compile BearSSL's library sources into a static archive.
#
# Invoked by the top-level Makefile (one run per compiler):
#   make -f third_party/bearssl.mk SRC=<bearssl tree> OUT=<dir> \
#        CC=<compiler> AR=ar BR_CFLAGS='<flags>'
#
# This is equivalent to BearSSL's own `make lib` (same sources, same include
# path -Isrc -Iinc) but keeps every output under OUT, never writes into SRC,
# tracks header dependencies, and recompiles when CC or BR_CFLAGS change.

SRC ?= $(error SRC (BearSSL source tree) not set)
OUT ?= $(error OUT (output directory) not set)
CC ?= cc
AR ?= ar
BR_CFLAGS ?= -W -Wall -Os

BR_SRCS := $(wildcard $(SRC)/src/*.c $(SRC)/src/*/*.c)
BR_OBJS := $(patsubst $(SRC)/src/%.c,$(OUT)/obj/%.o,$(BR_SRCS))
BR_FLAGS_FILE := $(OUT)/.flags

# Quiet by default (277 files per compiler); V=1 shows full commands.
ifeq ($(V),1)
Q :=
say = @:
else
Q := @
say = @echo '  $(1)'
endif

ifeq ($(BR_SRCS),)
$(error no BearSSL sources under $(SRC)/src)
endif

$(OUT)/libbearssl.a: $(BR_OBJS)
	$(call say,AR      $@ ($(words $(BR_OBJS)) objects: $(CC) $(BR_CFLAGS)))
	@rm -f $@.tmp
	$(Q)$(AR) rcs $@.tmp $(BR_OBJS)
	@mv $@.tmp $@

$(OUT)/obj/%.o: $(SRC)/src/%.c $(BR_FLAGS_FILE)
	@mkdir -p $(@D)
	$(call say,CC      $@)
	$(Q)$(CC) $(BR_CFLAGS) -I$(SRC)/src -I$(SRC)/inc -MMD -MP -c $< -o $@

# Rewritten only when the compile command changes.
$(BR_FLAGS_FILE): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(BR_CFLAGS) $(abspath $(SRC))' | cmp -s - $@ 2>/dev/null || \
	  echo '$(CC) $(BR_CFLAGS) $(abspath $(SRC))' > $@

.PHONY: FORCE
FORCE:

-include $(BR_OBJS:.o=.d)
