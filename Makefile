# Every target creates .venv on first use (Python 3.11, exact pins from constraints.txt).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# uv installs the same pinned set as pip in under a minute instead of about five; pip is the fallback.
UV := uv==0.13.9

.PHONY: venv emulators system-deps dashboard bench-labels demo demo-stream test bench bench-api bench-stream bench-accuracy bench-ablations bench-defaults serve lock lint clean

$(STAMP): setup.py constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(UV)
	$(PY) -m uv pip install --quiet --python $(PY) -c constraints.txt -e '.[dev]' \
		|| $(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The BigQuery emulator (PyPI bqemulator) pins its own DuckDB, so it gets a venv of its own.
# DuckDB loads extensions from ~/.duckdb: they are imported from PyPI once, under the HOME
# imgclf.emulators runs it with, so it starts offline. numpy: its built-in UDFs need it.
EMU_VENV := .venv-emulators
EMU_STAMP := $(EMU_VENV)/.installed-stamp
EMU_PINS := bqemulator==1.4.0 duckdb==1.5.5 duckdb-extensions==1.5.5 duckdb-extension-spatial==1.5.5 \
	duckdb-extension-avro==1.5.5 numpy==2.4.6

$(EMU_STAMP): Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(EMU_VENV)/bin/python || $(PYTHON) -m venv $(EMU_VENV)
	$(EMU_VENV)/bin/python -m pip install --quiet $(UV)
	$(EMU_VENV)/bin/python -m uv pip install --quiet --python $(EMU_VENV)/bin/python $(EMU_PINS) \
		|| $(EMU_VENV)/bin/python -m pip install --quiet $(EMU_PINS)
	mkdir -p $(EMU_VENV)/home
	HOME=$(CURDIR)/$(EMU_VENV)/home $(EMU_VENV)/bin/python -c \
		"from duckdb_extensions import import_extension; import_extension('spatial'); import_extension('avro')"
	touch $(EMU_STAMP)

## make emulators: the BigQuery emulator's own venv (the Pub/Sub emulator comes with the gcloud SDK)
emulators: $(EMU_STAMP)

## make demo: ELPV solar cells -> train -> batch-classify the held-out images -> summary
demo: venv
	$(PY) -m imgclf.demo

## make demo-stream: after make demo: Pub/Sub -> imgclf stream -> BigQuery on local emulators, alias moved halfway
demo-stream: venv $(EMU_STAMP)
	$(PY) -m imgclf.demo_stream

## make system-deps: Chromium and the PostgreSQL server, from Debian, when absent (the dashboard's tests)
system-deps:
	bash .ci/system-deps

## make test: the whole suite (starts its own GCS, Pub/Sub, BigQuery emulators and PostgreSQL on loopback)
test: venv emulators system-deps
	$(PY) -m pytest -q tests

## make bench: batch throughput, naive loop vs in-graph ceiling vs Beam pipeline
bench: venv
	$(PY) -m bench.batch_throughput

## make bench-api: the prediction API under load vs the offline ceiling and a no-batching server
bench-api: venv
	$(PY) -m bench.api_throughput

## make bench-stream: imgclf stream at 10-100 msg/s on the Pub/Sub and BigQuery emulators, vs the batch pipeline
bench-stream: venv $(EMU_STAMP)
	$(PY) -m bench.stream_throughput

## make bench-labels: the label store with 100,000 images on SQLite and PostgreSQL: queue page, save, grid action
bench-labels: venv system-deps
	$(PY) -m bench.label_store

## make bench-accuracy: ELPV binary / four-class / multilabel accuracy, trained here on the CPU
bench-accuracy: venv
	$(PY) -m bench.accuracy

## make bench-ablations: SimSiam pretraining with 10%/25% of the labels, and GAN oversampling, 3 seeds each (about 1.5 h on 2 cores)
bench-ablations: venv
	$(PY) -m bench.accuracy --ablation label-scarce --seeds 0,1,2
	$(PY) -m bench.accuracy --ablation gan --seeds 0,1,2

## make bench-defaults: imgclf train's defaults (fast vs auto within the budget) on ELPV and on data unlike it
bench-defaults: venv
	$(PY) -m bench.accuracy --defaults elpv-binary,digits,digit-sets,shapes

## make dashboard: the labeling dashboard on http://127.0.0.1:8501 over the label store (after make demo)
dashboard: venv
	$(VENV)/bin/imgclf dashboard

## make serve: the API on http://127.0.0.1:8000 over the registry (after make demo)
serve: venv
	$(VENV)/bin/imgclf serve

## make lock: the container images' fully pinned, hashed requirements (templates/locks/), from setup.py + constraints.txt
LOCK := $(PY) -m uv pip compile setup.py -c constraints.txt --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_31 --no-header --quiet
lock: venv
	$(LOCK) -o templates/locks/cpu.txt
	$(LOCK) templates/locks/gpu.in -o templates/locks/gpu.txt

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint templates/Dockerfile

clean:
	rm -rf $(VENV) $(EMU_VENV) var bench/work
