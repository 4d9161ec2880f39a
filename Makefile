# Two commands to start: `make demo` and `make test`. Both install first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.test-installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

# torch/torchvision are large and resolve from the machine's local files: install them
# once per venv, then the package in editable mode. Re-running does nothing unless the
# package metadata changed.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || \
	  $(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# CLIP_benchmark is a parity peer in the tests only. Its pinned deps would pull in
# unrelated packages, so it is installed without them (docs/protocols.md); its WebDataset
# reader (build_wds_dataset) needs webdataset and requests, the parity test of wds: shards.
$(TSTAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps clip-benchmark==1.6.2
	$(BIN)/pip install -q webdataset==1.0.2 requests
	touch $@

demo: install
	$(BIN)/silc-bench demo

test: $(TSTAMP)
	$(BIN)/ruff check silc_bench tests
	$(BIN)/python -m pytest tests

# Benchmarks write reports/perf.md (ratios against the peer, run side by side).
bench: install
	$(BIN)/python -m silc_bench.bench.slide
	$(BIN)/python -m silc_bench.bench.fingerprint
	$(BIN)/python -m silc_bench.bench.suite
	$(BIN)/python -m silc_bench.bench.cli_latency

lint: install
	$(BIN)/ruff check silc_bench tests

clean:
	rm -rf $(VENV) results .pytest_cache
