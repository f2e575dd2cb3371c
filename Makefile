# egressd — build, run and test.  See README.md.
#
#   make            build build/egressd
#   make run        build, then run on conf/egressd.conf
#   make test       build, then unit and integration tests
#   make SANITIZE=address,undefined test   the same under ASan+UBSan
#                                          (objects in build-san/)
#   make valgrind   unit and integration tests with everything under
#                   valgrind's memcheck (objects in build-vg/)

CC       ?= cc
PKGS     := libevent libevent_pthreads libevent_openssl libcares libconfig \
            openssl libseccomp
SANITIZE ?=

ifeq ($(SANITIZE),)
BUILD    ?= build
SANFLAGS :=
else
BUILD    ?= build-san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) $(HARDEN) $(SANFLAGS) \
            -DEGRESSD_VERSION='"$(VERSION)"' -MMD -MP
LDFLAGS  += -pie -Wl,-z,relro,-z,now $(SANFLAGS)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# The I/O-free core: unit-tested without sockets.
CORE     := host netset http policy config load reason metrics identity \
            suggest tls clienthello route config_gateway gitpkt watch_line \
            watch_view
# Everything that touches sockets, files or signals.
DAEMON   := main explain worker admin conn request answer proxy gateway \
            gateway_git watch \
            dial origin tunnel \
            forward idle pool resolve log sandbox secret
UNITS    := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

CORE_OBJ   := $(CORE:%=$(BUILD)/proxy/%.o)
DAEMON_OBJ := $(DAEMON:%=$(BUILD)/proxy/%.o)

.PHONY: all deps test-deps run test unit integration k8s-test alerts-test container-test check-config \
        clean format fuzz fuzz-smoke bench bench-gateway bench-smoke valgrind images

all: deps $(BUILD)/egressd

deps:
	@sh scripts/deps.sh build

test-deps:
	@sh scripts/deps.sh test

$(BUILD)/proxy/%.o: proxy/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Iproxy -c -o $@ $<

$(BUILD)/libcore.a: $(CORE_OBJ)
	ar rcs $@ $^

$(BUILD)/egressd: $(DAEMON_OBJ) $(BUILD)/libcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Unit tests link the core, plus log (its escaping is tested directly) and
# sandbox (its filter is tested in forked children).  A unit test of a
# module that touches sockets links that module too (UNIT_OBJ_test_x): it
# drives it over socketpairs on its own event loop, never the network.
UNIT_OBJ_test_forward := $(BUILD)/proxy/forward.o $(BUILD)/proxy/idle.o
UNIT_OBJ_test_origin  := $(BUILD)/proxy/origin.o
UNIT_OBJ_test_secret  := $(BUILD)/proxy/secret.o

.SECONDEXPANSION:
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $$(UNIT_OBJ_$$*) \
		$(BUILD)/libcore.a $(BUILD)/proxy/log.o $(BUILD)/proxy/sandbox.o
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka

run: all
	./$(BUILD)/egressd -c conf/egressd.conf

unit: deps test-deps $(UNITS:%=$(BUILD)/tests/unit/%)
	@set -e; for t in $(UNITS); do \
		echo "== unit: $$t"; \
		CMOCKA_MESSAGE_OUTPUT=stdout ./$(BUILD)/tests/unit/$$t; \
	done

integration: all test-deps
	EGRESSD=$(abspath $(BUILD)/egressd) sh tests/integration/run.sh

# The container images of k8s/images, built with podman (tests/containers).
images: deps
	sh scripts/deps.sh containers
	bash tests/containers/images.sh

# The images, and the sidecar-lockdown overlay played as a real pod with
# podman (tests/containers).
container-test: deps
	sh scripts/deps.sh containers
	bash tests/containers/run.sh

# The alert rules, unit-tested with promtool (tests/alerts).
alerts-test: test-deps
	sh tests/alerts/run.sh

k8s-test: all test-deps
	EGRESSD=$(abspath $(BUILD)/egressd) sh tests/k8s/run.sh

# Benchmarks (not tests: nothing in `make test` depends on a timing):
# `make bench` compares egressd with Squid, tinyproxy and a direct
# connection; see tests/bench/README.md.
BENCH_TOOLS := $(BUILD)/bench/loadgen $(BUILD)/bench/upstream

$(BUILD)/bench/%: tests/bench/%.c tests/bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lm

bench: all $(BENCH_TOOLS)
	EGRESSD=$(abspath $(BUILD)/egressd) BENCH_BIN=$(abspath $(BUILD)/bench) \
		bash tests/bench/run.sh
	EGRESSD=$(abspath $(BUILD)/egressd) bash tests/bench/gateway.sh

# The gateway against nginx and a direct HTTPS client (tests/bench/gateway.sh).
bench-gateway: all
	EGRESSD=$(abspath $(BUILD)/egressd) bash tests/bench/gateway.sh

bench-smoke: all $(BENCH_TOOLS)
	EGRESSD=$(abspath $(BUILD)/egressd) BENCH_BIN=$(abspath $(BUILD)/bench) \
		bash tests/bench/run.sh --smoke

# libFuzzer: `make fuzz` runs each target FUZZ_SECONDS (default 60);
# `make fuzz-smoke` replays the seeds and saved crashers and fuzzes each
# target for a few seconds (part of `make test`).
FUZZ_SECONDS ?= 60

fuzz: test-deps
	sh tests/fuzz/run.sh long $(FUZZ_SECONDS)

fuzz-smoke: test-deps
	sh tests/fuzz/run.sh smoke

test: unit integration k8s-test alerts-test container-test fuzz-smoke

# Valgrind (memcheck): the unit tests, then the integration suite with every
# egressd it starts under valgrind (tests/integration/README.md). A -O1 build
# of its own in build-vg/. Any invalid access, use of uninitialised memory or
# definite/indirect leak fails it; tests/integration/valgrind.supp holds the
# suppressions (third-party libraries' one-time allocations only).
VG_BUILD := build-vg
VALGRIND := valgrind --error-exitcode=99 --leak-check=full \
            --show-leak-kinds=definite,indirect \
            --errors-for-leak-kinds=definite,indirect --track-fds=no \
            --num-callers=30 \
            --suppressions=$(abspath tests/integration/valgrind.supp)

# Valgrind cannot run a program that installs a seccomp filter: the
# sandbox's unit test runs natively and under ASan, and the integration
# harness turns the filter off under the wrapper.
VG_UNITS := $(filter-out test_sandbox,$(UNITS))

valgrind: deps test-deps
	CFLAGS='-O1 -g' $(MAKE) --no-print-directory BUILD=$(VG_BUILD) SANITIZE= \
		$(VG_BUILD)/egressd $(VG_UNITS:%=$(VG_BUILD)/tests/unit/%)
	@set -e; for t in $(VG_UNITS); do \
		echo "== unit (valgrind): $$t"; \
		CMOCKA_MESSAGE_OUTPUT=stdout $(VALGRIND) -q ./$(VG_BUILD)/tests/unit/$$t; \
	done
	EGRESSD=$(abspath $(VG_BUILD)/egressd) \
	EGRESSD_WRAPPER='$(VALGRIND) --log-file=%q{EGRESSD_IT_DIR}/valgrind.%p.log' \
		sh tests/integration/run.sh

check-config: all
	./$(BUILD)/egressd -t -c conf/egressd.conf

format:
	clang-format -i proxy/*.c proxy/*.h tests/unit/*.c

clean:
	rm -rf build build-san build-fuzz build-vg

-include $(wildcard $(BUILD)/proxy/*.d $(BUILD)/tests/unit/*.d $(BUILD)/bench/*.d)
