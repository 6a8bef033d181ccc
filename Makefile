# sluice — see README.md. `make run` and `make test` are the two commands that matter.

CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
BUILD    := build
GEN      := $(BUILD)/gen
PYTHON   := /usr/bin/python3

WARN     := -Wall -Wextra -Werror -Wno-missing-field-initializers
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE $(WARN) -I$(GEN) -Iuserspace -I. -MMD -MP
LDLIBS   := -luring -lsqlite3 -lpq -lz -lzstd -llz4 -lsnappy -lxdp -lbpf -lelf -lcurl -lssl -lcrypto -lrdkafka -lpthread -lm

# BPF programs (bpf/NAME.bpf.c), built against the committed vmlinux.h; each gets a libbpf skeleton
# $(GEN)/NAME.skel.h that its userspace loader includes.
BPF_PROGS  := steer forward
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ivmlinux -Ibpf -Wall -Werror -MMD -MP
BPF_OBJ    := $(patsubst %,$(BUILD)/bpf/%.bpf.o,$(BPF_PROGS))
SKELS      := $(patsubst %,$(GEN)/%.skel.h,$(BPF_PROGS))

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SCHEMAS  := $(wildcard userspace/protocol/schema/*.def)
LIB_SRC  := $(filter-out userspace/main.c tools/bench_validate.c tools/mock_broker.c,$(shell find userspace tools -name '*.c' | sort)) $(GEN)/messages.c
LIB_SRC  := $(filter-out tools/bench_commit.c tools/bench_chunk_index.c,$(LIB_SRC))
UNIT_SRC := $(wildcard tests/unit/*.c)

LIB_OBJ      := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC))
SAN_LIB_OBJ  := $(patsubst %.c,$(BUILD)/san/%.o,$(LIB_SRC))
UNIT_OBJ     := $(patsubst %.c,$(BUILD)/san/%.o,$(UNIT_SRC))

.PHONY: all deps run test unit integration fuzz bench install clean
all: $(BUILD)/sluice

deps:
	@tools/deps.sh

# The generated message tables: C structs + descriptors from the schema files.
$(GEN)/messages.c $(GEN)/messages.h: tools/gen_messages.py $(SCHEMAS)
	@mkdir -p $(GEN)
	$(PYTHON) tools/gen_messages.py --out $(GEN) $(SCHEMAS)

# The kernel side: BPF object, then its skeleton (the object embedded, plus typed accessors).
$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(GEN)/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(GEN)
	$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

.SECONDARY: $(BPF_OBJ)

# BPF programs that only test beds use (tests/bed/NAME.bpf.c), loaded with `ip link set ... xdp obj`.
BED_BPF_OBJ := $(patsubst tests/bed/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(wildcard tests/bed/*.bpf.c))
$(BUILD)/bpf/%.bpf.o: tests/bed/%.bpf.c
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(GEN)/messages.h $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/san/%.o: %.c $(GEN)/messages.h $(SKELS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN_FLAGS) -Itests/unit -c $< -o $@

$(BUILD)/sluice: $(BUILD)/obj/userspace/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The same agent under AddressSanitizer + UBSan: integration tests run this one.
$(BUILD)/sluice-san: $(BUILD)/san/userspace/main.o $(SAN_LIB_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit_tests: $(UNIT_OBJ) $(SAN_LIB_OBJ)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets over the agent's code (clang only): fuzz_request (the codec), fuzz_handlers
# (whole requests through a worker's loop, handlers and store threads).
FUZZ_LIB := $(filter-out %/main.c,$(LIB_SRC))
$(BUILD)/fuzz_request $(BUILD)/fuzz_handlers: $(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(GEN)/messages.h $(SKELS)
	$(CLANG) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-I$(GEN) -Iuserspace -I. -o $@ $< $(FUZZ_LIB) $(LDLIBS)

# libFuzzer target for record batches: validation, decompression and record iteration (clang only).
# Only record/ and what it needs, with the test batch builder to compress what the fuzzer writes.
RECORD_SRC := $(wildcard userspace/record/*.c) userspace/util/buf.c tests/unit/batch_builder.c
$(BUILD)/fuzz_records: tests/fuzz/fuzz_records.c $(RECORD_SRC) $(wildcard userspace/record/*.h) tests/unit/batch_builder.h
	@mkdir -p $(dir $@)
	$(CLANG) -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Iuserspace -Itests/unit -o $@ tests/fuzz/fuzz_records.c $(RECORD_SRC) -lz -lzstd -llz4 -lsnappy -lcrypto -lpthread

# Validation throughput per codec (make bench), optimised and without sanitizers.
$(BUILD)/bench_validate: tools/bench_validate.c $(RECORD_SRC) $(wildcard userspace/record/*.h) tests/unit/batch_builder.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -Iuserspace -Itests/unit -o $@ tools/bench_validate.c $(RECORD_SRC) \
		-lz -lzstd -llz4 -lsnappy -lcrypto -lpthread

# Metadata commit time per flush on SQLite and PostgreSQL (make bench): the agent's optimised store
# code, with the unit tests' throwaway PostgreSQL.
BENCH_COMMIT_SRC := tools/bench_commit.c tests/unit/pg_fixture.c tests/unit/test_util.c
$(BUILD)/bench_commit: $(BENCH_COMMIT_SRC) $(LIB_OBJ)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -Itests/unit -o $@ $(BENCH_COMMIT_SRC) $(LIB_OBJ) $(LDLIBS)

# Fetch planning and ListOffsets-by-time lookups on aged partitions (make bench, issue 13).
BENCH_CHUNKS_SRC := tools/bench_chunk_index.c tests/unit/pg_fixture.c tests/unit/test_util.c
$(BUILD)/bench_chunk_index: $(BENCH_CHUNKS_SRC) $(LIB_OBJ)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -Itests/unit -o $@ $(BENCH_CHUNKS_SRC) $(LIB_OBJ) $(LDLIBS)

# librdkafka's in-memory mock cluster, the baseline make bench compares the agent with.
$(BUILD)/mock_broker: tools/mock_broker.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -o $@ $< -lrdkafka

run: deps $(BUILD)/sluice
	mkdir -p data
	$(BUILD)/sluice agent --advertise-hostname-strategy local

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

test: deps $(BUILD)/sluice $(BUILD)/sluice-san $(BUILD)/unit_tests $(BUILD)/fuzz_request $(BUILD)/fuzz_handlers $(BUILD)/fuzz_records $(BED_BPF_OBJ)
	tests/run.sh

bench: deps $(BUILD)/sluice $(BED_BPF_OBJ) $(BUILD)/bench_validate $(BUILD)/mock_broker
bench: $(BUILD)/bench_commit $(BUILD)/bench_chunk_index
	$(BUILD)/bench_validate
	$(BUILD)/bench_commit
	$(BUILD)/bench_chunk_index
	SLUICE_BIN=$(CURDIR)/$(BUILD)/sluice MOCK_BROKER=$(CURDIR)/$(BUILD)/mock_broker /usr/bin/python3 tools/bench_perf.py
	SLUICE_BIN=$(CURDIR)/$(BUILD)/sluice /usr/bin/python3 tools/bench_locality.py
	SLUICE_BIN=$(CURDIR)/$(BUILD)/sluice /usr/bin/python3 tools/bench_catchup.py
	SLUICE_BIN=$(CURDIR)/$(BUILD)/sluice /usr/bin/python3 tools/bench_compaction.py

install: $(BUILD)/sluice
	install -D -m 0755 $(BUILD)/sluice /usr/local/bin/sluice

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
