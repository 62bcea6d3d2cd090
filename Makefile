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
CFLAGS  += $(CFLAGS_BASE) $(OPT)
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
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libsmoe.a
TOOL_SRC := $(wildcard tools/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
MODEL    ?= tests/data/model/mixtral-tiny-F32.gguf

.PHONY: all run test test-build test-fast test-san bench fuzz format clean
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
all: $(SMOE_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SMOE_BIN): $(TOOL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run: $(SMOE_BIN)
	./$(SMOE_BIN) run -m $(MODEL) -p "In the beginning" -n 48 --temp 0.8 --seed 42

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

format:
	clang-format -i include/*.h src/*.c src/*.h src/*/*.[ch] tools/*.c tests/*.[ch]

clean:
	rm -rf build smoe build.test.log build.san.log

-include $(LIB_OBJ:.o=.d) $(TEST_BIN:=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d)
