# Entry points: `make demo` runs the main job, `make test` the whole suite
# (a normal build, the same suite under ASan + UBSan, and the fuzzers), and
# `make install PREFIX=P` installs the tool and the libraries (docs/install.md).
# Builds are quiet: their output goes to BUILD_DIR/build.log and is printed
# only when they fail (V=1 shows it).  Missing Debian packages are installed
# first through scripts/install-deps.sh.  docs/testing.md says more.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 30
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local

.PHONY: all deps build build-asan build-fuzz demo test test-plain test-asan test-fuzz fuzz bench \
	install format clean web

all: build

deps:
	@./scripts/install-deps.sh

# $(call quiet_build,DIR,CONFIGURE ARGS,BUILD ARGS)
ifeq ($(V),1)
define quiet_build
	@cmake -S . -B $(1) $(2)
	@cmake --build $(1) -j $(JOBS) $(3)
endef
else
define quiet_build
	@mkdir -p $(1)
	@if ! { cmake -S . -B $(1) $(2) && cmake --build $(1) -j $(JOBS) $(3); } \
	    >$(1)/build.log 2>&1; then \
	  cat $(1)/build.log; echo "make: the build in $(1) failed (log: $(1)/build.log)" >&2; \
	  exit 1; \
	fi
endef
endif

build: deps
	$(call quiet_build,$(BUILD),-DCMAKE_BUILD_TYPE=RelWithDebInfo)

build-asan: deps
	$(call quiet_build,$(ASAN_BUILD),-DCMAKE_BUILD_TYPE=Debug -DCSTACK_SANITIZE=ON)

demo: build
	@./$(BUILD)/cstack demo

# The three runs, then one line: "N passed, N failed" (scripts/suite.sh).
test:
	@MAKE="$(MAKE)" ./scripts/suite.sh

test-plain: build web
	@./scripts/ctest-run.sh plain $(BUILD) -j $(JOBS)

test-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  CSTACK_SANITIZED=1 ./scripts/ctest-run.sh asan $(ASAN_BUILD) -j $(JOBS)

# Fuzzing (fuzz/, CMake option CSTACK_FUZZ): clang, libFuzzer, ASan + UBSan.
# `make fuzz` runs every fuzzer for FUZZ_SECONDS; `make test-fuzz` is the
# suite's run, FUZZ_TEST_SECONDS each.  Both fail on a crash, a sanitizer
# report or a leak.
build-fuzz: deps
	$(call quiet_build,$(FUZZ_BUILD),-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCSTACK_FUZZ=ON -DCSTACK_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS),--target fuzzers)

test-fuzz: build-fuzz
	@./scripts/ctest-run.sh fuzz $(FUZZ_BUILD) -L fuzz -j $(JOBS)

fuzz:
	@$(MAKE) --no-print-directory test-fuzz FUZZ_TEST_SECONDS=$(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD)/bench_*; do echo "== $$b"; $$b; done

# The browser target (docs/web.md): build/web/, servable as is.
web: build
	@mkdir -p $(BUILD)
	@if ! ./scripts/build-web.sh $(BUILD)/web >$(BUILD)/web.log 2>&1; then \
	  cat $(BUILD)/web.log; echo "make: the web build failed (log: $(BUILD)/web.log)" >&2; exit 1; \
	fi

install: build
	@cmake --install $(BUILD) --prefix "$(PREFIX)"

format:
	@clang-format -i include/*.h src/*/*.[ch] cli/*.[ch] tests/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
