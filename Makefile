# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Each builds .venv from nothing when it is missing; Delta jars are fetched on first Spark start and cached
# under $(RECSPARK_CACHE) (default ~/.cache/recspark).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= 0.001
LAKEHOUSE ?= data/lakehouse
SOURCE ?=
FORMAT ?= goodreads

.PHONY: run test test-fast lint bench clean venv native-blas

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[spark,ranker,dev]"
	touch $@

# The main job on the embedded default (local Spark, Delta tables under ./data/lakehouse).
# Without SOURCE it generates a small UCSD-format dataset first (scale $(SCALE)).
run: venv
	$(BIN)/recspark run --lakehouse $(LAKEHOUSE) --scale $(SCALE) $(if $(SOURCE),--source $(SOURCE) --format $(FORMAT),)

# Two pytest-xdist workers by default (8-11% faster on 2 cores than one process; docs/testing.md, "Two workers");
# TEST_WORKERS=0 runs them in this process, one after the other.
TEST_WORKERS ?= 2

test: venv
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	$(BIN)/python bench/ingest.py --scale 0.01
	$(BIN)/python bench/blas.py --scale 0.002 --rank 64 --iterations 10 --repeats 2
	$(BIN)/python bench/topk.py --users 100000 --items 200000 --rank 64 --k 100 --sim-items 200000
	$(BIN)/python bench/scale.py --scale 0.01 --tune off --no-evaluate --out scale-0.01
	$(BIN)/python bench/scale.py --scale 0.03 --tune off --no-evaluate --out scale-0.03
	$(BIN)/python bench/scale.py --scale 0.1 --tune off
	$(BIN)/python bench/sizing.py

clean:
	rm -rf data/lakehouse data/raw spark-warehouse metastore_db

# Optional: a system OpenBLAS, which netlib loads by itself (RECSPARK_NATIVE_BLAS=1 fetches one instead; README, Dependencies)
native-blas:
	apt-get install -y libopenblas0-pthread
