# Fuzzing with clang's libFuzzer, ASan and UBSan (included by the Makefile).
#
#   make fuzz                  builds build-fuzz/fuzz_* and runs each for FUZZ_TIME seconds
#   make fuzz FUZZ_TIME=600    runs them long; FUZZ="ws chat" picks harnesses
#   make fuzz-build            builds only (make test replays the corpora with them)
#
# New inputs go to build-fuzz/work/NAME (spec/fuzz/corpus/NAME only seeds them); a crash, a leak
# or a broken invariant is saved as build-fuzz/crashes/NAME-crash-* and the run fails.

FUZZ_CC    ?= clang
FUZZ_DIR   := build-fuzz
FUZZ_TIME  ?= 60
FUZZ_NAMES := http ws utf8 webroot chat
FUZZ       ?= $(FUZZ_NAMES)
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_FLAGS  = -std=c11 $(WARN) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_CORE  := $(CORE:%=$(FUZZ_DIR)/%.o) $(FUZZ_DIR)/fuzz_common.o
FUZZ_BINS  := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build
.SECONDARY: $(FUZZ_CORE)
fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/%.o: src/%.c | $(FUZZ_DIR)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_common.o: spec/fuzz/fuzz_common.c | $(FUZZ_DIR)
	$(FUZZ_CC) $(CPPFLAGS) -Isrc $(FUZZ_FLAGS) -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: spec/fuzz/fuzz_%.c $(FUZZ_CORE)
	$(FUZZ_CC) $(CPPFLAGS) -Isrc -DCHAT_SCRIPT='"$(CURDIR)/scripts/chat.lua"' $(FUZZ_FLAGS) \
	  -fsanitize=fuzzer -o $@ $< $(FUZZ_CORE) $(LDLIBS)

$(FUZZ_DIR):
	mkdir -p $(FUZZ_DIR)

fuzz: deps $(FUZZ_BINS)
	@spec/fuzz/run $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ)

-include $(wildcard $(FUZZ_DIR)/*.d)
