# Entry points: `make demo` runs the main job, `make test` the whole suite
# (a normal build, then the same suite under ASan + UBSan).  Both install
# missing Debian packages first through scripts/install-deps.sh.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 30
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build build-asan build-fuzz demo test test-plain test-asan test-fuzz fuzz bench \
	format clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCSTACK_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	@./$(BUILD)/cstack demo

test: test-plain test-asan test-fuzz

test-plain: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  CSTACK_SANITIZED=1 ctest --output-on-failure -j $(JOBS)

# Fuzzing (fuzz/, CMake option CSTACK_FUZZ): clang, libFuzzer, ASan + UBSan.
# `make fuzz` runs every fuzzer for FUZZ_SECONDS; `make test-fuzz` is the
# suite's run, FUZZ_TEST_SECONDS each.  Both fail on a crash, a sanitizer
# report or a leak.
build-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCSTACK_FUZZ=ON -DCSTACK_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

test-fuzz: build-fuzz
	@cd $(FUZZ_BUILD) && ctest -L fuzz --output-on-failure -j $(JOBS)

fuzz:
	@$(MAKE) --no-print-directory test-fuzz FUZZ_TEST_SECONDS=$(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD)/bench_*; do echo "== $$b"; $$b; done

format:
	@clang-format -i include/*.h src/*/*.[ch] cli/*.[ch] tests/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
