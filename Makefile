# wakeq - a scale-to-zero job system.
#
#   make            build/wakeq-worker, build/wakeq-api, build/wakeq, the
#                   media plugin and the example plugin (make examples)
#   make install    into $(DESTDIR)$(PREFIX) (/usr/local): bin/, the media
#                   plugin in lib/wakeq/, include/wakeq/handler.h; also
#                   make uninstall
#   make test       unit + integration tests (real redis-server, postgres),
#                   and the bounded subset of the chaos tests
#   make chaos      the long fault-injection runs (tests/chaos), figures
#                   into docs/RELIABILITY.md
#   make demo       one media job end to end, local servers started for you
#   make bench      benchmarks, figures into docs/BENCHMARKS.md
#   make fuzz       libFuzzer targets (clang) into build/fuzz/
#   make SANITIZE=1 ASan + UBSan build (also for test)
#   make WERROR=0   do not stop on warnings

CC ?= cc
BUILD ?= build
SANITIZE ?= 0
WERROR ?= 1
CFLAGS ?= -O2 -g

# -Wpedantic but for string literals longer than C99's minimum of 4095
# characters: the queue's Lua scripts (build/gen/queue/scripts.h) are, and
# gcc and clang take any length.
WARN := -std=c11 -Wall -Wextra -Wpedantic -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wwrite-strings -Wvla -fno-common \
	-Wno-overlength-strings
# gcc's -Wformat-truncation guesses; clang has no such option (and would
# warn about its name), so it is turned off only where it exists.
ifeq ($(shell $(CC) -Wformat-truncation -Werror -fsyntax-only -x c /dev/null 2>/dev/null && echo y),y)
WARN += -Wno-format-truncation
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif
SAN :=
ifeq ($(SANITIZE),1)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BUILD := build-san
endif

# Each module's third-party libraries (pkg-config names); a binary links
# the union of its modules' lists and nothing more. <module>_DLOPEN: the
# libraries a module loads itself on first use (base/dl.h): their headers
# only, never linked, so a start without DATABASE_URL or a fetch does not
# load libpq or libcurl and the ~20 libraries they pull in.
base_PKGS :=
crypto_PKGS := libcrypto
log_PKGS :=
config_PKGS :=
job_PKGS := jansson
handler_PKGS := jansson
queue_PKGS := hiredis
httpd_PKGS := libmicrohttpd jansson
metrics_PKGS :=
worker_PKGS := jansson
wake_DLOPEN := libcurl
store_DLOPEN := libpq
reconcile_PKGS :=
api_PKGS := jansson
media_PKGS := libavformat libavcodec libavutil libswscale libswresample libavfilter
fetch_PKGS := jansson
fetch_DLOPEN := libcurl
webhook_DLOPEN := libcurl
-include $(wildcard internal/*/module.mk)

# rediss:// needs hiredis >= 1.0 built with TLS (hiredis_ssl); bookworm's
# 0.14 has none, and then rediss:// is refused at start-up.
# The queue makes its own OpenSSL context (conn.c: host name checks).
ifeq ($(shell pkg-config --exists hiredis_ssl && echo yes),yes)
queue_PKGS += hiredis_ssl libssl
CPPFLAGS += -DWAKEQ_HIREDIS_SSL
endif

# Which modules each binary links (modules with no sources yet are skipped).
wakeq-worker_MODULES := base crypto log config cron job handler queue metrics httpd store reconcile fetch webhook wake worker
wakeq-api_MODULES := base crypto log config cron job handler queue metrics httpd fetch wake store reconcile api
wakeq_MODULES := base crypto log config cron job handler queue fetch wake store reconcile
wakeq_PKGS := jansson

BINS := wakeq-worker wakeq-api wakeq
ALL_MODULES := $(sort $(foreach b,$(BINS),$($(b)_MODULES)) media)
ALL_PKGS := $(sort $(foreach m,$(ALL_MODULES),$($(m)_PKGS)))
ALL_DLOPEN := $(sort $(foreach m,$(ALL_MODULES),$($(m)_DLOPEN)))
PKG_CFLAGS := $(shell pkg-config --cflags $(ALL_PKGS) $(ALL_DLOPEN) 2>/dev/null)

CPPFLAGS += -D_GNU_SOURCE -Iinternal -I$(BUILD)/gen $(PKG_CFLAGS)
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SAN) -pthread -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN) -pthread

mod_srcs = $(wildcard internal/$(1)/*.c)
mod_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(call mod_srcs,$(1)))
bin_objs = $(foreach m,$($(1)_MODULES),$(call mod_objs,$(m)))
bin_libs = $(shell pkg-config --libs $(sort $($(1)_PKGS) $(foreach m,$($(1)_MODULES),$($(m)_PKGS))) 2>/dev/null) -lm -ldl

all: $(addprefix $(BUILD)/,$(BINS)) $(BUILD)/wakeq-media.so examples

# The worker exports its symbols to the media plugin (FFmpeg lives there,
# loaded on the first media job: see internal/worker/media_plugin.c).
$(BUILD)/wakeq-worker: $(BUILD)/obj/cmd/worker/main.o $(call bin_objs,wakeq-worker)
	$(CC) $(ALL_LDFLAGS) -Wl,--export-dynamic -o $@ $^ $(call bin_libs,wakeq-worker)
MEDIA_PIC := $(patsubst %.c,$(BUILD)/pic/%.o,$(call mod_srcs,media))
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -c -o $@ $<
$(BUILD)/wakeq-media.so: $(MEDIA_PIC)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(shell pkg-config --libs $(media_PKGS) jansson) -lm
# media/plugin.c names the build it belongs to (WAKEQ_VERSION).
$(BUILD)/pic/internal/media/plugin.o $(BUILD)/obj/internal/media/plugin.o: $(BUILD)/gen/version_gen.h
$(BUILD)/wakeq-api: $(BUILD)/obj/cmd/api/main.o $(call bin_objs,wakeq-api)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call bin_libs,wakeq-api)
# The CLI is a few files (one per group of commands) under cmd/wakeq.
WAKEQ_CLI_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cmd/wakeq/*.c))
$(BUILD)/wakeq: $(WAKEQ_CLI_OBJS) $(call bin_objs,wakeq)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call bin_libs,wakeq)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# Lua scripts of the queue, compiled in as C strings.
LUA := $(sort $(filter-out %/_lib.lua,$(wildcard internal/queue/lua/*.lua)))
%/gen/queue/scripts.h: $(LUA) internal/queue/lua/_lib.lua internal/queue/lua2c.sh internal/queue/luashake.awk
	@mkdir -p $(dir $@)
	sh internal/queue/lua2c.sh internal/queue/lua/_lib.lua $(LUA) > $@.tmp && mv $@.tmp $@
$(call mod_objs,queue): $(BUILD)/gen/queue/scripts.h

# The version of all three binaries, made once here (base/version.h):
# `git describe` (v1.2.3-4-gabcdef, or the commit alone before the first
# tag), else 0.0.0-unknown; make WAKEQ_VERSION=... overrides. The header
# is rewritten only when the text changes, so nothing rebuilds otherwise.
WAKEQ_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null) && \
	case $$v in (v[0-9]*) echo "$${v\#v}" ;; (*) echo "0.0.0-g$$v" ;; esac || echo 0.0.0-unknown)
%/gen/version_gen.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define WAKEQ_VERSION "$(WAKEQ_VERSION)"' >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/obj/internal/base/version.o: $(BUILD)/gen/version_gen.h
FORCE:
.PHONY: FORCE

# Documents the API serves (GET /openapi.yaml), compiled in as C strings.
API_DOCS := docs/openapi.yaml
%/gen/api/docs.h: $(API_DOCS) internal/api/embed.sh
	@mkdir -p $(dir $@)
	sh internal/api/embed.sh api_doc $(API_DOCS) > $@.tmp && mv $@.tmp $@
$(call mod_objs,api): $(BUILD)/gen/api/docs.h

# The dashboard's page, script and style sheet (GET /dashboard), the same
# way: plain files written here, no build step of their own.
DASHBOARD := $(sort $(wildcard internal/api/dashboard/*))
%/gen/api/dashboard.h: $(DASHBOARD) internal/api/embed.sh
	@mkdir -p $(dir $@)
	sh internal/api/embed.sh api_dash $(DASHBOARD) > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/internal/api/dashboard.o: $(BUILD)/gen/api/dashboard.h

# ---- handler plugins ---------------------------------------------------
# wakeq's one public header: the C ABI of handler plugins
# (internal/handler/wakeq_handler.h), which plugins include as
# <wakeq/handler.h>: from $(BUILD)/include here, from $(PREFIX)/include
# once installed. Plugins outside wakeq are built as their authors would
# build them: that header, their own libraries, every symbol resolved at
# link time (-z defs), nothing taken from the worker.
ABI_HEADER := $(BUILD)/include/wakeq/handler.h
$(ABI_HEADER): internal/handler/wakeq_handler.h
	@mkdir -p $(dir $@)
	cp $< $@
PLUGIN_BUILD = $(CC) $(WARN) $(CFLAGS) $(SAN) -fPIC -shared -I$(BUILD)/include \
	$(shell pkg-config --cflags jansson) $(LDFLAGS) -Wl,-z,defs
EXAMPLES := $(BUILD)/examples/wordcount.so
$(BUILD)/examples/wordcount.so: docs/examples/plugin/wordcount.c $(ABI_HEADER)
	@mkdir -p $(dir $@)
	$(PLUGIN_BUILD) -o $@ $< $(shell pkg-config --libs jansson)
examples: $(EXAMPLES)
# Test plugins (tests/plugins/testplug.c): this ABI, another one, none.
TEST_PLUGINS := $(addprefix $(BUILD)/tests/plugins/,testplug.so badabi.so noabi.so)
$(BUILD)/tests/plugins/testplug.so: tests/plugins/testplug.c $(ABI_HEADER)
	@mkdir -p $(dir $@)
	$(PLUGIN_BUILD) -o $@ $< -lm
$(BUILD)/tests/plugins/badabi.so: tests/plugins/testplug.c $(ABI_HEADER)
	@mkdir -p $(dir $@)
	$(PLUGIN_BUILD) -DTESTPLUG_ABI=999 -o $@ $< -lm
$(BUILD)/tests/plugins/noabi.so: tests/plugins/testplug.c $(ABI_HEADER)
	@mkdir -p $(dir $@)
	$(PLUGIN_BUILD) -DTESTPLUG_NOABI -o $@ $< -lm

# ---- install -----------------------------------------------------------
# A fixed layout under PREFIX: the worker finds wakeq-media.so (and
# plugins named without a path) beside itself or in ../lib/wakeq from its
# own directory, so the tree can be moved as a whole.
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL ?= install
install: all
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/wakeq \
		$(DESTDIR)$(PREFIX)/include/wakeq
	$(INSTALL) -m 755 $(addprefix $(BUILD)/,$(BINS)) $(DESTDIR)$(PREFIX)/bin/
	$(INSTALL) -m 644 $(BUILD)/wakeq-media.so $(DESTDIR)$(PREFIX)/lib/wakeq/
	$(INSTALL) -m 644 internal/handler/wakeq_handler.h \
		$(DESTDIR)$(PREFIX)/include/wakeq/handler.h
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(BINS)) \
		$(DESTDIR)$(PREFIX)/lib/wakeq/wakeq-media.so \
		$(DESTDIR)$(PREFIX)/include/wakeq/handler.h
	-rmdir $(DESTDIR)$(PREFIX)/lib/wakeq $(DESTDIR)$(PREFIX)/include/wakeq 2>/dev/null

# ---- tests -------------------------------------------------------------
# Unit tests: tests/unit/<module>/test_*.c, each a cmocka program linked
# with every module object except the binaries' own (worker, api).
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
LIB_MODULES := $(ALL_MODULES)
LIB_OBJS := $(foreach m,$(LIB_MODULES),$(call mod_objs,$(m)))
LIB_LIBS = $(shell pkg-config --libs $(ALL_PKGS) cmocka 2>/dev/null) -lm -ldl
# The test tools call libcurl themselves (as clients of the API): linked;
# but not mediatool, which maps what the worker maps (tests/bench/media.sh).
TOOL_LIBS = $(LIB_LIBS) $(shell pkg-config --libs $(ALL_DLOPEN) 2>/dev/null)
$(BUILD)/tests/tools/mediatool: TOOL_LIBS = $(LIB_LIBS)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))

# Only the media tests link FFmpeg: its libraries' start-up code (libhwy)
# uses instructions valgrind cannot run, and the rest need none of it.
NOMEDIA_MODULES := $(filter-out media,$(LIB_MODULES))
NOMEDIA_OBJS := $(foreach m,$(NOMEDIA_MODULES),$(call mod_objs,$(m)))
NOMEDIA_LIBS = $(shell pkg-config --libs $(sort $(foreach m,$(NOMEDIA_MODULES),$($(m)_PKGS))) cmocka 2>/dev/null) -lm -ldl
# Static pattern rules: the targets are listed, so make never falls back
# to the other rule while objects are still to be built.
MEDIA_UNIT_BINS := $(filter $(BUILD)/tests/unit/media/%,$(UNIT_BINS))
OTHER_UNIT_BINS := $(filter-out $(MEDIA_UNIT_BINS),$(UNIT_BINS))
$(MEDIA_UNIT_BINS): $(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(ALL_LDFLAGS) $(LIB_LIBS)
$(OTHER_UNIT_BINS): $(BUILD)/tests/unit/%: tests/unit/%.c $(NOMEDIA_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(NOMEDIA_OBJS) $(ALL_LDFLAGS) $(NOMEDIA_LIBS)
$(TOOL_BINS): $(BUILD)/tests/tools/%: tests/tools/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJS) $(ALL_LDFLAGS) $(TOOL_LIBS)

# The bare fork+exec baseline of the handler benchmark: libc alone.
$(BUILD)/tests/bench/spawnloop: tests/bench/spawnloop.c tests/tools/benchstat.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -o $@ $<

tests: all $(UNIT_BINS) $(TOOL_BINS) $(TEST_PLUGINS) $(BUILD)/tests/bench/spawnloop

deps:
	@container/deps.sh install build

test-deps:
	@container/deps.sh install test

# What test, demo, bench and test-images need: a dpkg query, and deps.sh
# install only when something is missing (a fresh machine), so once make
# deps or test-deps has run, no apt-get runs at all.
have-test-deps:
	@m=$$(container/deps.sh missing test) && [ -z "$$m" ] || container/deps.sh install test

# make test installs what is missing, builds, then runs every test against
# real servers that tests/run.sh starts; it ends with "N passed, N failed".
test: have-test-deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory fuzz
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run.sh $(TESTS)

# make chaos: every tests/chaos scenario in its long form (CHAOS=full,
# about 15 minutes), then their figures into docs/RELIABILITY.md (written
# even when a check failed: the figures say which).
chaos: have-test-deps
	@$(MAKE) --no-print-directory tests
	@rm -f $(BUILD)/chaos-figures.jsonl
	@BUILD=$(BUILD) CHAOS=full CHAOS_FIGURES=$(CURDIR)/$(BUILD)/chaos-figures.jsonl \
		tests/run.sh chaos; rc=$$?; \
		tests/chaos/report.sh $(BUILD)/chaos-figures.jsonl docs/RELIABILITY.md; exit $$rc

demo: have-test-deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) tests/demo.sh

bench: have-test-deps
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) tests/bench/run.sh $(BENCH)

# Both images built offline with podman and run against a real Redis:
# API -> wake -> worker -> done, SIGTERM mid-job, idle exit (root only).
test-images: have-test-deps
	@$(MAKE) --no-print-directory $(TOOL_BINS)
	@BUILD=$(BUILD) container/test-images.sh

.PHONY: test-images

# ---- fuzzing (clang + libFuzzer) --------------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
FUZZ_CPPFLAGS = -D_GNU_SOURCE -Iinternal -Ibuild/fuzz/gen $(PKG_CFLAGS)
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined
FUZZ_LIBOBJS = $(patsubst %.c,build/fuzz/obj/%.o,$(foreach m,$(LIB_MODULES),$(call mod_srcs,$(m))))

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CPPFLAGS) $(WARN) -Wno-unused-command-line-argument -Wno-unknown-warning-option \
		-g -O1 -fsanitize=fuzzer-no-link,address,undefined -pthread -c -o $@ $<
$(patsubst %.c,build/fuzz/obj/%.o,$(call mod_srcs,queue)): build/fuzz/gen/queue/scripts.h
$(patsubst %.c,build/fuzz/obj/%.o,$(call mod_srcs,api)): build/fuzz/gen/api/docs.h
build/fuzz/obj/internal/api/dashboard.o: build/fuzz/gen/api/dashboard.h
build/fuzz/obj/internal/base/version.o: build/fuzz/gen/version_gen.h

build/fuzz/obj/internal/base/version.o build/fuzz/obj/internal/media/plugin.o: build/fuzz/gen/version_gen.h
$(FUZZ_BINS): build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIBOBJS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CPPFLAGS) $(FUZZ_FLAGS) -pthread -o $@ $< $(FUZZ_LIBOBJS) $(TOOL_LIBS)

fuzz: $(FUZZ_BINS)

valgrind: tests
	@BUILD=$(BUILD) VALGRIND=1 tests/run.sh unit

clean:
	rm -rf build build-san build-hiredis1

.PHONY: all examples install uninstall tests deps test-deps have-test-deps test chaos demo bench fuzz valgrind clean
-include $(shell find $(BUILD)/obj $(BUILD)/pic $(BUILD)/tests build/fuzz/obj -name '*.d' 2>/dev/null)
