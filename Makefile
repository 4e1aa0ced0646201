# One plain Makefile. `make` builds bin/, `make debug` builds build/debug/bin with
# ASan+UBSan, `make static` builds build/static/bin with musl-gcc, fully static.
# `make test` runs the BATS suite against bin/ (BIN=... picks another build).
#
# Every program is PROG/PROG.c linked against one static library built from lib/*.c.
# Generated sources (Unicode tables) go to $(OUT)/gen; nothing generated is committed.

PROGS    = tok detok embed prefill decode sample npycmp kvstore model
MODE    ?= release
CC      ?= cc
HOSTCC  ?= cc
CFLAGS_BASE = -std=c11 -Wall -Wextra -D_GNU_SOURCE -g -fPIC -DDEFAULT_MODEL='"$(abspath build/models/tiny)"'
LDLIBS_BASE = -lcjson -lsodium -lpthread -lm
# libmicrohttpd: dlopen'd at `tok --serve` in dynamic builds (lib/mhd.h says why), linked in static.
MHD_LIBS    = -ldl

# ARCH: the CPU `make static` builds for, this machine's by default. `make static
# ARCH=aarch64` on an x86-64 host cross-builds fully static aarch64 binaries with musl
# (lib/musl-deps.sh builds musl and the libraries for it from Debian's source packages
# with gcc-aarch64-linux-gnu) into build/static-aarch64/bin, and the t/ programs beside
# them; `make test-aarch64` runs them under qemu-aarch64. Build-time tools stay HOSTCC.
# (Only from the command line: an ARCH in the environment is often some other tool's.)
HOSTARCH   := $(shell uname -m)
ifneq ($(origin ARCH),command line)
  ARCH     := $(HOSTARCH)
endif
ifeq ($(ARCH),$(HOSTARCH))
  MUSL_PREFIX ?= $(HOME)/.cache/qwen3-pipe/musl
else
  MUSL_PREFIX ?= $(HOME)/.cache/qwen3-pipe/musl-$(ARCH)
endif

ifeq ($(MODE),release)
  OUT     = build/release
  BINDIR  = bin
  CFLAGS ?= -O2
else ifeq ($(MODE),debug)
  OUT     = build/debug
  BINDIR  = build/debug/bin
  CFLAGS ?= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(MODE),static)
  # Debian's .a files are built for glibc; lib/musl-deps.sh builds cJSON, libsodium
  # and libmicrohttpd from Debian's source packages with musl into MUSL_PREFIX.
  OUT     = build/static
  BINDIR  = build/static/bin
  CC      = musl-gcc
  ifneq ($(ARCH),$(HOSTARCH))
    OUT     = build/static-$(ARCH)
    BINDIR  = $(OUT)/bin
    CC      = $(MUSL_PREFIX)/bin/musl-gcc
    # Debian's aarch64 gcc 12.2 crashes (internal compiler error in
    # vect_transform_reduction) vectorizing a loop of t/quant_test.c; tests only.
    $(OUT)/t/%: ALL_CFLAGS += -fno-tree-loop-vectorize
  endif
  CFLAGS ?= -O2
  MHD_LIBS = -lmicrohttpd
  CPPFLAGS += -I$(MUSL_PREFIX)/include
  LDFLAGS  += -static -L$(MUSL_PREFIX)/lib
else
  $(error MODE must be release, debug or static)
endif

ifneq ($(MODE),static)
  CPPFLAGS += -DMHD_DLOPEN
  ifneq ($(ARCH),$(HOSTARCH))
    ifeq ($(filter static check-static-deps,$(MAKECMDGOALS)),)
      $(error ARCH=$(ARCH) is for the static build: make static ARCH=$(ARCH))
    endif
  endif
endif
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS) $(CPPFLAGS) -Ilib -I$(OUT)/gen
LIBSRC  = $(wildcard lib/*.c)
LIBOBJ  = $(LIBSRC:lib/%.c=$(OUT)/lib/%.o)
LIBA    = $(OUT)/libqwen.a
BINS    = $(PROGS:%=$(BINDIR)/%)
# t/*.c are test programs that speak to the lib/ headers; the BATS files run them.
TPROGS  = $(patsubst t/%.c,$(OUT)/t/%,$(wildcard t/*.c))
GEN     = $(OUT)/gen/ucd_tables.h

.PHONY: all debug static test test-debug test-static deps clean check-static-deps
all: $(BINS) $(TPROGS)

debug:
	$(MAKE) MODE=debug
static: check-static-deps
	$(MAKE) MODE=static
check-static-deps:
	@test -f $(MUSL_PREFIX)/lib/libsodium.a || ARCH=$(ARCH) MUSL_PREFIX=$(MUSL_PREFIX) sh lib/musl-deps.sh

.SECONDEXPANSION:
$(BINDIR)/%: $$*/$$*.c $(LIBA) | $(BINDIR)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS_BASE) $(MHD_LIBS) $(LDLIBS)

$(OUT)/t/%: t/%.c $(LIBA) | $(OUT)/t
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBA) $(LDLIBS_BASE) $(MHD_LIBS) $(LDLIBS)

# Simulated AX650 runtimes (t/sim/ax650) that t/ax650.bats has the ax650 backend dlopen:
# libax_engine.so and libaxcl_rt.so compute each layer with lib/'s CPU backend (hence
# -fPIC in CFLAGS_BASE: libqwen.a links into them). A static build cannot dlopen: none.
AXSIM = $(OUT)/t/sim/libax_engine.so $(OUT)/t/sim/libax_sys.so $(OUT)/t/sim/libaxcl_rt.so
ifneq ($(MODE),static)
all: $(AXSIM)
endif
$(OUT)/t/sim/libax_sys.so: t/sim/ax650/sys.c t/sim/ax650/sim.h lib/ax650.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $<
$(OUT)/t/sim/lib%.so: t/sim/ax650/sim.c t/sim/ax650/sim.h lib/ax650.h $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-Bsymbolic $(LDFLAGS) -o $@ t/sim/ax650/$(SIMSRC_$*) t/sim/ax650/sim.c \
	  $(LIBA) $(LDLIBS_BASE) $(MHD_LIBS)
SIMSRC_ax_engine = engine.c
SIMSRC_axcl_rt   = axcl.c
$(OUT)/t/sim/libax_engine.so: t/sim/ax650/engine.c
$(OUT)/t/sim/libaxcl_rt.so: t/sim/ax650/axcl.c

# Simulated CANN runtime (t/sim/ascend) that t/ascend.bats has the ascend backend dlopen:
# three libraries under the real names, opapi and nnopbase linked to ascendcl (the state
# they share), found beside each other through $$ORIGIN. Not in the static build.
ASCENDSIM = $(OUT)/t/sim/libascendcl.so $(OUT)/t/sim/libnnopbase.so $(OUT)/t/sim/libopapi.so
ifneq ($(MODE),static)
all: $(ASCENDSIM)
endif
$(OUT)/t/sim/libascendcl.so: t/sim/ascend/acl.c t/sim/ascend/sim.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $<
$(OUT)/t/sim/libnnopbase.so: t/sim/ascend/nnopbase.c t/sim/ascend/sim.h $(OUT)/t/sim/libascendcl.so
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $< -L$(@D) -lascendcl -Wl,-rpath,'$$ORIGIN'
$(OUT)/t/sim/libopapi.so: t/sim/ascend/opapi.c t/sim/ascend/sim.h $(OUT)/t/sim/libnnopbase.so
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $< -L$(@D) -lnnopbase -lascendcl -lm -Wl,-rpath,'$$ORIGIN'

$(LIBA): $(LIBOBJ)
	rm -f $@ && ar rcs $@ $^

$(OUT)/lib/%.o: lib/%.c lib/*.h $(GEN) | $(OUT)/lib
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unicode tables: generated at build time from Debian's unicode-data (UnicodeData.txt,
# DerivedAge.txt, CompositionExclusions.txt) and the reference tokenizer's regex classes.
UCD ?= /usr/share/unicode
$(GEN): lib/gen/ucdgen.c lib/data/unicode_classes.json | $(OUT)/gen
	$(HOSTCC) -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -o $(OUT)/gen/ucdgen lib/gen/ucdgen.c -lcjson
	$(OUT)/gen/ucdgen $(UCD) lib/data/unicode_classes.json > $@.tmp && mv $@.tmp $@

$(OUT)/lib $(OUT)/gen $(OUT)/t $(BINDIR):
	mkdir -p $@

# Test models: lib/gen/tinymodel writes a Qwen3 model directory (seeded random weights,
# identical bytes everywhere) and the real tokenizer is copied beside it. build/models/tiny
# is every program's default model (DEFAULT_MODEL); `make models` adds the variants that
# t/forward.bats checks against HF transformers (t/fixtures/forward). Models do not depend
# on MODE, so all builds share them; 0.6b and 4b are for benchmarks (make build/models/4b/config.json).
MODELS     = build/models
TINYMODEL  = $(MODELS)/tinymodel
MODEL_TOK  = t/fixtures/qwen3-tokenizer/tokenizer.json t/fixtures/qwen3-tokenizer/tokenizer_config.json
MODEL_ARGS_tiny        = --preset tiny --dtype bf16
MODEL_ARGS_tiny-f32    = --preset tiny --dtype f32
MODEL_ARGS_tiny-yarn   = --preset tiny --dtype f32 --yarn 4:32
MODEL_ARGS_tiny-untied = --preset tiny --dtype bf16 --untied
MODEL_ARGS_0.6b-2l     = --preset 0.6b-2l --dtype bf16
MODEL_ARGS_0.6b        = --preset 0.6b --dtype bf16
MODEL_ARGS_0.6b-f32    = --preset 0.6b --dtype f32
MODEL_ARGS_4b          = --preset 4b --dtype bf16
TEST_MODELS = tiny-f32 tiny-yarn tiny-untied 0.6b-2l
.PHONY: models
all: $(MODELS)/tiny/config.json
models: $(TEST_MODELS:%=$(MODELS)/%/config.json)
test test-debug test-static: models
$(TINYMODEL): lib/gen/tinymodel.c
	@mkdir -p $(@D)
	$(HOSTCC) -std=c11 -O2 -Wall -Wextra -o $@ $<
# config.json is written last, so its presence means a complete directory.
$(MODELS)/%/config.json: $(TINYMODEL) $(MODEL_TOK)
	@mkdir -p $(@D)
	cp $(MODEL_TOK) $(@D)/
	$(TINYMODEL) $(MODEL_ARGS_$*) $(@D)

# The suite runs against one build: BIN holds the programs, TBIN the t/ test programs.
test: all
	BIN=bin TBIN=build/release/t bats --tap t
test-debug: debug
	BIN=build/debug/bin TBIN=build/debug/t bats --tap t
test-static: static
	BIN=build/static/bin TBIN=build/static/t bats --tap t
# The aarch64 build under qemu-aarch64: t/qemu/wrap writes a script per program that runs
# it in qemu, BIN and TBIN name those, and the suites run unchanged; t/qemu/arch.bats adds
# what only two machines can test. qemu emulates f32 arithmetic in software (~100x slower
# than native here), so of the tests on 0.6b-2l (Qwen3-0.6B's dimensions) only its logits
# against HF run (4.5 min); everything on the tiny models runs, and of t/kvstore.bats
# the resumes.
QEMU_DIR   = build/static-aarch64/qemu
QEMU_BATS  = BIN=$(QEMU_DIR)/bin TBIN=$(QEMU_DIR)/t bats --tap
.PHONY: test-aarch64
test-aarch64: all models
	$(MAKE) static ARCH=aarch64
	sh t/qemu/wrap build/static-aarch64/bin $(QEMU_DIR)/bin
	sh t/qemu/wrap build/static-aarch64/t $(QEMU_DIR)/t
	$(QEMU_BATS) t/qemu/arch.bats t/tok.bats t/kern.bats
	$(QEMU_BATS) --filter 'generator|tiny|0.6B|YaRN|untied|not the reference' t/forward.bats
	$(QEMU_BATS) --filter 'kernels of every|torchao|bf16 of an f32|one cache file' t/quant.bats
	$(QEMU_BATS) --filter '^pipeline: ([^-]|-[^-])*$$' t/pipeline.bats
	$(QEMU_BATS) --filter 'kvs: (commit, reopen|prefix reuse|fork|a commit torn|encrypted|export)|kvstore (fork|export)' t/kvstore.bats

# Fuzzing with clang's libFuzzer (+ASan+UBSan): t/fuzz/NAME_fuzz.c over every lib/*.c,
# into build/fuzz/NAME_fuzz. `make fuzz-run` runs each FUZZ_SECONDS (default 60) from the
# seeds in t/fuzz/corpus/NAME (new inputs go to build/fuzz/corpus-NAME, crashes to
# build/fuzz/crash-*); it fails if any target finds a crash. FUZZ_SEED (default 1, as
# CI runs it: the same inputs in the same order each time, so CI does not fail by luck)
# seeds libFuzzer's mutations; FUZZ_SEED=0 lets libFuzzer pick one, for exploring.
FUZZ         = build/fuzz
FUZZ_TARGETS = gguf st
FUZZ_SECONDS ?= 60
FUZZ_SEED    ?= 1
.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_TARGETS:%=$(FUZZ)/%_fuzz)
$(FUZZ)/%_fuzz: t/fuzz/%_fuzz.c $(LIBSRC) lib/*.h $(GEN)
	@mkdir -p $(@D)
	clang $(CFLAGS_BASE) -DMHD_DLOPEN -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -Ilib -I$(OUT)/gen -o $@ $< $(LIBSRC) $(LDLIBS_BASE) -ldl
fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ)/corpus-$$t && \
	  echo "fuzz $$t: $(FUZZ_SECONDS) s" && \
	  $(FUZZ)/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -seed=$(FUZZ_SEED) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ)/crash-$$t- $(FUZZ)/corpus-$$t t/fuzz/corpus/$$t \
	    > $(FUZZ)/$$t.log 2>&1; rc=$$?; \
	  grep -E '^stat::number_of_executed_units' $(FUZZ)/$$t.log; \
	  [ $$rc -eq 0 ] || { tail -40 $(FUZZ)/$$t.log; exit 1; }; \
	done

# Install the Debian packages the build and the tests need (CI calls this).
DEB_PKGS = build-essential libcjson-dev libsodium-dev libmicrohttpd-dev musl-tools unicode-data \
           bats bats-assert bats-support curl python3 dpkg-dev autoconf automake libtool \
           gcc-aarch64-linux-gnu qemu-user \
           clang libclang-rt-14-dev xz-utils
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf build bin
