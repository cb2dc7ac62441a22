# confab: a WebSocket chat server whose core is C and whose behaviour is Lua.
#
#   make          build build/confab
#   make run      install what is missing, build, serve the chat on http://localhost:8080
#   make test     install what is missing, build, run every suite; last line "N passed, N failed"
#   make bench    build the load generator and print the benchmark table
#   make cluster  a local redis-server and three nodes on it, http://localhost:8080-8082 (Ctrl-C stops)
#   make install  PREFIX/bin/confab with its scripts and page in PREFIX/share/confab (PREFIX=/usr/local),
#                 the man page, the systemd unit and SYSCONFDIR/confab/confab.conf; DESTDIR= stages it
#   make uninstall  removes what make install put there (an edited confab.conf stays)
#   make fuzz     build the libFuzzer harnesses and run each FUZZ_TIME seconds (spec/fuzz/fuzz.mk)
#   make clean
#
# SANITIZE=1 builds everything with AddressSanitizer and UBSan.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
PKGS    := lua5.4 libcrypto libssl
CPPFLAGS += -D_GNU_SOURCE -MMD -MP
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lwslay -lhttp_parser -lhiredis -luring -lz -lm

ifeq ($(SANITIZE),1)
CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
export ASAN_OPTIONS := detect_leaks=1
BUILD   ?= build-san
endif

BUILD   ?= build
# Everything but main.c goes into a library the unit tests link against.
CORE    := log config pool frame utf8 outq conn conn_ids poller hub deadline http handshake webroot static ws script sandbox \
	confab_lib script_timer script_limit server watch
CORE    += paths urldecode
CORE    += pattern
CORE    += redis_url redis_link redis_room script_callback
CORE    += metrics admin redis_observe
CORE    += deflate_negotiate deflate inflate outmsg
CORE    += caps bucket
CORE    += claims presence presence_state
CORE    += tls uring
CORE_OBJ := $(CORE:%=$(BUILD)/%.o)
UNIT_SRC := $(wildcard spec/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:spec/unit/%.c=$(BUILD)/unit/%.o)

# Debian packages the build, the tests and the benchmark need (command or file that proves each).
DEB_PKGS := build-essential:gcc pkg-config:pkg-config libev-dev:/usr/include/ev.h \
	libwslay-dev:/usr/include/wslay/wslay.h liblua5.4-dev:/usr/include/lua5.4/lua.h \
	lua5.4:lua5.4 lua-cjson:/usr/lib/x86_64-linux-gnu/lua/5.4/cjson.so \
	lua-busted:/usr/share/lua/5.4/busted/runner.lua libssl-dev:/usr/include/openssl/ssl.h openssl:openssl \
	libhttp-parser-dev:/usr/include/http_parser.h zlib1g-dev:/usr/include/zlib.h uthash-dev:/usr/include/uthash.h libhiredis-dev:/usr/include/hiredis/read.h \
	python3-websockets:/usr/lib/python3/dist-packages/websockets/__init__.py \
	python3-websocket:/usr/lib/python3/dist-packages/websocket/__init__.py \
	chromium:/usr/bin/chromium nodejs:node npm:npm \
	fonts-wqy-microhei:/usr/share/fonts/truetype/wqy/wqy-microhei.ttc clang:clang \
	libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a \
	redis-server:/usr/bin/redis-server redis-tools:/usr/bin/redis-cli \
	python3-prometheus-client:/usr/lib/python3/dist-packages/prometheus_client/__init__.py \
	man-db:/usr/bin/man groff-base:/usr/bin/groff systemd:/usr/bin/systemd-analyze \
	liburing-dev:/usr/include/liburing.h

.PHONY: all deps run test unit-test bench clean install uninstall cluster
all: $(BUILD)/confab

# Install only what is missing; apt-get update once, and only when something is.
deps:
	@missing=""; for p in $(DEB_PKGS); do pkg=$${p%%:*}; probe=$${p#*:}; \
	  case $$probe in /*) [ -e $$probe ] || missing="$$missing $$pkg";; \
	  *) command -v $$probe >/dev/null 2>&1 || missing="$$missing $$pkg";; esac; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (apt-get) or install:$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@[ -d spec/browser/node_modules/playwright-core ] || \
	  (cd spec/browser && npm ci --no-audit --no-fund --silent)

$(BUILD)/confab: $(BUILD)/main.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit_tests: $(UNIT_OBJ) $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/loadgen: bench/loadgen.c
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# The heap-call counter bench/run preloads into the server (never sanitized: it replaces malloc).
$(BUILD)/alloc_count.so: bench/alloc_count.c | $(BUILD)
	$(CC) -std=c11 $(WARN) -O2 -g -shared -fPIC -o $@ $<

$(BUILD)/pattern_bench: bench/pattern.c $(BUILD)/pattern.o
	$(CC) $(CPPFLAGS) -Isrc $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: src/%.c | $(BUILD)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/unit/%.o: spec/unit/%.c | $(BUILD)
	@mkdir -p $(BUILD)/unit
	$(CC) $(CPPFLAGS) -Isrc $(ALL_CFLAGS) -c -o $@ $<

$(BUILD):
	mkdir -p $(BUILD)

run: deps all
	$(BUILD)/confab --addr :8080 --script scripts/chat.lua --web web

# Each suite prints its own "NAME: N passed, N failed"; spec/run prints the sum last.
test: deps all $(BUILD)/unit_tests fuzz-build
	@spec/run $(BUILD)

# Three nodes on one local redis-server, to try the cluster in a browser (tools/run-cluster).
cluster: deps all
	@tools/run-cluster $(BUILD)

# The reference server of the idle-room, accept and rooms scenarios: Node's ws, pinned by
# bench/package-lock.json.
bench: deps all $(BUILD)/loadgen $(BUILD)/alloc_count.so $(BUILD)/pattern_bench
	@[ -d bench/node_modules/ws ] || (cd bench && npm ci --no-audit --no-fund --silent)
	@bench/run $(BUILD)
	@$(BUILD)/pattern_bench

# PREFIX/bin/confab finds its script and page in PREFIX/share/confab (src/paths.c), so those two
# places are fixed; the rest follows the usual layout. SYSCONFDIR holds confab.conf, which the
# systemd unit reads; an existing one is kept (and kept by uninstall when it was edited).
PREFIX  ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/confab
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR := $(PREFIX)/share/confab
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DATADIR) $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/confab
	install -m 755 $(BUILD)/confab $(DESTDIR)$(PREFIX)/bin/confab
	cp -R scripts web $(DESTDIR)$(DATADIR)/
	chmod -R u=rwX,go=rX $(DESTDIR)$(DATADIR)
	install -m 644 dist/confab.conf $(DESTDIR)$(DATADIR)/confab.conf.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/confab/confab.conf ] || \
	  install -m 644 dist/confab.conf $(DESTDIR)$(SYSCONFDIR)/confab/confab.conf
	install -m 644 docs/confab.1 $(DESTDIR)$(MANDIR)/man1/confab.1
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  dist/confab.service.in > $(DESTDIR)$(UNITDIR)/confab.service
	chmod 644 $(DESTDIR)$(UNITDIR)/confab.service
	install -m 644 README.md docs/hooks.md $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/confab $(DESTDIR)$(MANDIR)/man1/confab.1 \
	  $(DESTDIR)$(UNITDIR)/confab.service
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	if cmp -s dist/confab.conf $(DESTDIR)$(SYSCONFDIR)/confab/confab.conf; then \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/confab/confab.conf; fi
	rmdir $(DESTDIR)$(SYSCONFDIR)/confab 2>/dev/null || true

clean:
	rm -rf build build-san build-fuzz

include spec/fuzz/fuzz.mk
-include $(wildcard $(BUILD)/*.d $(BUILD)/unit/*.d)
