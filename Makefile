# Every target creates .venv on first use (Python 3.11, exact pins from constraints.txt).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test bench bench-api bench-accuracy serve lint clean

$(STAMP): setup.py constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make demo: ELPV solar cells -> train -> batch-classify the held-out images -> summary
demo: venv
	$(PY) -m imgclf.demo

## make test: the whole suite (starts its own GCS emulator on loopback)
test: venv
	$(PY) -m pytest -q tests

## make bench: batch throughput, naive loop vs in-graph ceiling vs Beam pipeline
bench: venv
	$(PY) -m bench.batch_throughput

## make bench-api: the prediction API under load vs the offline ceiling and a no-batching server
bench-api: venv
	$(PY) -m bench.api_throughput

## make bench-accuracy: ELPV binary / four-class / multilabel accuracy, trained here on the CPU
bench-accuracy: venv
	$(PY) -m bench.accuracy

## make serve: the API on http://127.0.0.1:8000 over the registry (after make demo)
serve: venv
	$(VENV)/bin/imgclf serve

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) var bench/work
