# Set-up and everyday commands. `make setup` once, then `make run` / `make test`.

VENV := .venv
PY := $(VENV)/bin/python
# TFX 1.16 needs Python 3.10: the first interpreter below that really is 3.10
# (a pyenv shim for another version is skipped). Override with PYTHON310=...
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
ARGS ?=
# pytest-xdist workers for make test / test-fast (0: all in one process). Each holds a
# TensorFlow of its own (up to about 4.5 GB); the suite is CPU-bound, so one per core.
TEST_WORKERS ?= 2
# Test files go out one at a time, in the order tests/conftest.py gives them (the slow
# ones first), each file's tests to one worker (its module fixtures are built once).
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

IMAGE ?= tfx-image-classifier:0.1.0

.PHONY: setup run predict test test-fast lint bench preview kfp image clean

setup: $(VENV)/.installed

# Re-installs only when the pins or the package metadata change.
$(VENV)/.installed: constraints.txt pyproject.toml
	@test -n "$(PYTHON310)" || { echo "error: no Python 3.10 found (TFX 1.16 needs it); set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==24.2"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,lint]"
	@touch $@

run: setup
	$(PY) local_runner.py $(ARGS)

# Classify images with a pushed model: make predict ARGS="--model output/serving/image_classifier photos/"
predict: setup
	$(PY) predict.py $(ARGS)

test: setup
	$(PY) -m pytest $(XDIST) $(ARGS)

# Everything but the end-to-end runs, the tests that start other Python processes and
# the install (the markers in pyproject.toml).
test-fast: setup
	$(PY) -m pytest $(XDIST) -m "not e2e and not subprocess and not install" $(ARGS)

# ruff, with the rules in pyproject.toml
lint: setup
	$(VENV)/bin/ruff check .

# The quick benchmarks, or some with their own flags: make bench BENCH=input ARGS="--skip-training"
# (ARGS goes to every benchmark named, and each takes different flags). training and scale
# take half an hour or more each here: name them.
BENCH ?= validation beam input serving tracing
BENCHES := $(patsubst bench/bench_%.py,%,$(wildcard bench/bench_*.py))

bench: setup
	@for name in $(BENCH); do \
		test -f bench/bench_$$name.py || { echo "error: no benchmark bench/bench_$$name.py (BENCH takes: $(BENCHES))" >&2; exit 2; }; \
	done
	@set -e; for name in $(BENCH); do \
		echo "$(PY) -m bench.bench_$$name $(ARGS)"; $(PY) -m bench.bench_$$name $(ARGS); \
	done

# An augmentation preview on your own images: make preview ARGS="--data-dir PATH --preset heavy"
preview: setup
	$(PY) -m components.trainer.preview $(ARGS)

# The Kubeflow Pipelines v2 spec: make kfp ARGS="--data-dir gs://B/images --output-dir gs://B/run --kfp-image R/I:T"
kfp: setup
	$(PY) kubeflow_runner.py --output pipeline.json $(ARGS)

# The image every Kubeflow step runs in (needs Docker): make image IMAGE=registry/name:tag
image:
	docker build -t $(IMAGE) .

clean:
	rm -rf output .pytest_cache pipeline.json
