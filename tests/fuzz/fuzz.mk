# libFuzzer targets: tests/fuzz/fuzz_<target>.c, each linked with the core
# sources compiled with clang under the fuzzer's coverage instrumentation and
# ASan+UBSan (build/libcore.a is not instrumented, so it is not used).
# Driven by tests/fuzz/run.sh; run from the top of the tree:
#
#   make -f tests/fuzz/fuzz.mk        build every target into build-fuzz/

FUZZ_CC    ?= clang
FUZZ_BUILD ?= build-fuzz
PKGS       := libconfig openssl

CORE    := host netset http policy config load reason metrics identity suggest tls \
           clienthello route config_gateway gitpkt watch_line watch_view
TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all \
          -fno-omit-frame-pointer
WARN   := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
          -Wmissing-prototypes -Wformat=2 -Wimplicit-fallthrough
CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) $(SAN) -MMD -MP \
          $(shell pkg-config --cflags $(PKGS))
LIBS   := $(shell pkg-config --libs $(PKGS)) -lpthread

CORE_OBJ := $(CORE:%=$(FUZZ_BUILD)/proxy/%.o)

.PHONY: all
all: $(TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/proxy/%.o: proxy/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link -Iproxy -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(CORE_OBJ)
	$(FUZZ_CC) $(SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS)

-include $(wildcard $(FUZZ_BUILD)/proxy/*.d $(FUZZ_BUILD)/tests/fuzz/*.d)
