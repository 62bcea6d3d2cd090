# smoe - build, test and run.
#
#   make            build ./smoe (the CLI) and build/libsmoe.a
#   make run        build, then generate text with the bundled model
#   make test       build and run the test suite, then again under ASan+UBSan
#   make test-fast  the test suite once, no sanitizers
#   make CC=clang   any C11 compiler that takes gcc flags
#   make fuzz       libFuzzer targets (needs clang)
#   make format     clang-format the sources
#
# Sources are found by wildcard: a new src/**.c joins the library, a new tests/test_*.c
# becomes a test program, without editing this file.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith -Werror \
              -Iinclude -Isrc -MMD -MP -g -pthread
# GCC's -O2 vectorises a loop only when its trip count is a multiple of the vector width
# ("very-cheap" cost model), which leaves the element-wise loops of training scalar;
# "dynamic" allows a vector body with a scalar tail. Floating-point reductions are not
# reordered either way (no -ffast-math), so the results keep their bits. Clang has no
# such flag (it vectorises at -O2 anyway).
VECT    := $(shell $(CC) -fvect-cost-model=dynamic -E -x c /dev/null >/dev/null 2>&1 && echo -fvect-cost-model=dynamic)
CFLAGS  += $(CFLAGS_BASE) $(OPT) $(VECT)
LDLIBS  += -lm -pthread

ifeq ($(SAN),1)
  BUILD  := build/san
  CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address,undefined
  SMOE_BIN = $(BUILD)/smoe
else
  SMOE_BIN = smoe
endif

LIB_SRC  := $(wildcard src/*.c src/*/*.c src/*/*/*.c)
LIB      := $(BUILD)/libsmoe.a
TOOL_SRC := $(wildcard tools/*.c)
# `smoe serve` needs libmicrohttpd and cJSON (Debian: libmicrohttpd-dev libcjson-dev). They are
# detected by compiling and linking a one-line program; without them tools/server/no_server.c
# stands in and `smoe serve` says what to install. SERVER=0 or SERVER=1 skips the probe.
ifndef SERVER
SERVER := $(shell echo 'int main(void){return MHD_get_version() == 0 || cJSON_Version() == 0;}' | \
            $(CC) -x c -include microhttpd.h -include cjson/cJSON.h - -o /dev/null -lmicrohttpd -lcjson \
            >/dev/null 2>&1 && echo 1 || echo 0)
endif
export SERVER
ifeq ($(SERVER),1)
  TOOL_SRC    += $(filter-out tools/server/no_server.c,$(wildcard tools/server/*.c))
  SERVER_LIBS  = -lmicrohttpd -lcjson
else
  TOOL_SRC    += tools/server/no_server.c
endif
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
MODEL    ?= models/kjv-moe.gguf

.PHONY: all run test test-build test-fast test-san bench fuzz format clean
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
all: $(SMOE_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_FLAGS) -c $< -o $@

# ISA-specific kernel files get their own -m flags; only cpufeat-dispatched code calls them.
ARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq (,$(findstring x86_64,$(ARCH)))
$(BUILD)/src/cpu/x86/%_avx2.o:   ISA_FLAGS = -mavx2 -mfma -mf16c
$(BUILD)/src/cpu/x86/%_avx512.o: ISA_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c
else
LIB_SRC := $(filter-out src/cpu/x86/%,$(LIB_SRC))
endif
ifeq (,$(findstring aarch64,$(ARCH)))
LIB_SRC := $(filter-out src/cpu/arm/%,$(LIB_SRC))
endif

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SMOE_BIN): $(TOOL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SERVER_LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run: $(SMOE_BIN)
	./$(SMOE_BIN) run -m $(MODEL) -p "In the beginning" -n 64 --temp 0.8 --seed 42

test-build: $(SMOE_BIN) $(TEST_BIN)

test-fast: test-build
	@SMOE_BIN=./$(SMOE_BIN) bash tests/run.sh $(TEST_BIN)

test-san:
	@$(MAKE) --no-print-directory SAN=1 test-fast

# The full suite: plain build, then AddressSanitizer + UndefinedBehaviorSanitizer.
test:
	@mkdir -p build
	@$(MAKE) --no-print-directory -j$(JOBS) test-build >/dev/null || $(MAKE) --no-print-directory test-build
	@$(MAKE) --no-print-directory test-fast 2>&1 | tee $(BUILD).test.log
	@$(MAKE) --no-print-directory -j$(JOBS) SAN=1 test-build >/dev/null || $(MAKE) --no-print-directory SAN=1 test-build
	@$(MAKE) --no-print-directory SAN=1 test-fast 2>&1 | tee $(BUILD).san.log
	@bash tests/total.sh $(BUILD).test.log $(BUILD).san.log

# libFuzzer target for the GGUF reader: the library is built by this Makefile's own rules
# (per-ISA flags included) with clang, fuzzer coverage and ASan+UBSan into build/fuzz/lib,
# then linked with tests/fuzz/fuzz_gguf.c into build/fuzz/fuzz_gguf. Unless FUZZ_SECONDS is
# empty, it then fuzzes for FUZZ_SECONDS seconds on build/fuzz/corpus, seeded from
# tests/fuzz/corpus. Crash inputs land in build/fuzz/; extra libFuzzer flags in FUZZ_FLAGS.
# FUZZ_TARGET=data fuzzes the token-file reader instead (tests/fuzz/fuzz_data.c, seeds from
# tests/fuzz/corpus-data, work corpus build/fuzz/corpus-data).
FUZZ_TARGET  ?= gguf
FUZZ_SUFFIX   = $(if $(filter-out gguf,$(FUZZ_TARGET)),-$(FUZZ_TARGET))
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   ?=
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wpointer-arith -Werror -Iinclude -Isrc \
                -g -O1 -pthread
fuzz:
	@$(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=build/fuzz/lib SAN= \
	    OPT="-O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN)" build/fuzz/lib/libsmoe.a
	@mkdir -p build/fuzz/corpus$(FUZZ_SUFFIX)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) tests/fuzz/fuzz_$(FUZZ_TARGET).c build/fuzz/lib/libsmoe.a \
	    -o build/fuzz/fuzz_$(FUZZ_TARGET) -lm
	@cp tests/fuzz/corpus$(FUZZ_SUFFIX)/* build/fuzz/corpus$(FUZZ_SUFFIX)/
	$(if $(FUZZ_SECONDS),build/fuzz/fuzz_$(FUZZ_TARGET) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/ $(FUZZ_FLAGS) build/fuzz/corpus$(FUZZ_SUFFIX))

format:
	clang-format -i include/*.h src/*.c src/*.h src/*/*.[ch] tools/*.c tools/*.h tools/server/*.[ch] tests/*.[ch]

clean:
	rm -rf build smoe build.test.log build.san.log

-include $(LIB_OBJ:.o=.d) $(TEST_BIN:=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d)
