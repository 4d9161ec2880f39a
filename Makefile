# Two commands to start: `make demo` and `make test`. Both install first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.test-installed

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

# torch/torchvision are large and resolve from the machine's local files: install them
# once per venv, then the package in editable mode. Re-running does nothing unless the
# package metadata or the pins changed. setup.cfg declares ranges; the exact versions CI
# tests with are pinned in constraints.txt, passed to every install here (-c).
PIP_C   := $(BIN)/pip install -q -c constraints.txt

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || \
	  $(PIP_C) torch torchvision
	$(PIP_C) -e '.[test]'
	touch $@

# CLIP_benchmark is a parity peer in the tests only. Its pinned deps would pull in
# unrelated packages, so it is installed without them (docs/protocols.md); its WebDataset
# reader (build_wds_dataset) needs webdataset and requests, the parity test of wds: shards.
# lightly is the DINO reference of tests/test_train_reference.py, also without its deps
# (pytorch_lightning, hydra-core and their web stack): its loss, heads, EMA, schedule and
# transforms import only torch, torchvision, numpy and lightning-utilities.
$(TSTAMP): $(STAMP)
	$(PIP_C) --no-deps clip-benchmark lightly
	$(PIP_C) webdataset requests lightning-utilities
	touch $@

demo: install
	$(BIN)/silc-bench demo

test: $(TSTAMP)
	$(BIN)/ruff check silc_bench tests
	$(BIN)/python -m pytest tests -m "not slow" --durations=15

# Everything, the `slow` tests too (real-size B/16 conversion, the GPU script's dry run).
test-all: $(TSTAMP)
	$(BIN)/ruff check silc_bench tests
	$(BIN)/python -m pytest tests --durations=15

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
