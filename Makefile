# Two commands from a fresh clone: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PLUGINS := $(sort $(dir $(wildcard plugins/*/*/pyproject.toml)))
# Every pip call is pinned to the CPU torch wheel (see constraints.txt).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow lint bench cards clean setup-gpu gpu-suite

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt $(wildcard plugins/*/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" $(foreach p,$(PLUGINS),-e $(p))
	# litdata pulls a CUDA torchvision that breaks `import lightning` on CPU torch; its token path never uses it.
	$(PY) -m pip uninstall --quiet --yes torchvision || true
	# PYTHONDONTWRITEBYTECODE may be set globally: compile once, or every import costs ~20 s.
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

demo: setup
	$(VENV)/bin/litplug train examples/quickstart.yaml

# Tests run on up to 4 workers (pytest-xdist), a file per worker so module fixtures run once.
test: setup
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile

# The full sweeps marked `slow` (every architecture trains and exports): ~5 more minutes.
test-slow: setup
	$(PY) -m pytest -n auto --maxprocesses 4 --dist loadfile -m slow

lint: setup
	$(VENV)/bin/ruff check .

# The CPU benchmarks (the GPU one needs CUDA: `make gpu-suite`).
bench: setup
	for b in $(filter-out benchmarks/gpu_suite.py,$(wildcard benchmarks/*.py)); do $(PY) $$b || exit 1; done

# Paste each finished reproduce/ sweep summary (runs/sweeps/*/summary.md) into its method card.
cards: setup
	$(PY) scripts/cards.py

# A CUDA machine: its own venv, .venv-gpu, so the CPU torch of `make setup` and the CUDA torch never
# replace each other; every pip call of it is pinned by constraints-gpu.txt (overriding the PIP_CONSTRAINT
# exported above). `make test` checks that this resolves (tests/test_gpu_install.py).
GPU_VENV := .venv-gpu
GPU_PY := $(GPU_VENV)/bin/python
GPU_PIP := PIP_CONSTRAINT=$(CURDIR)/constraints-gpu.txt $(GPU_PY) -m pip

setup-gpu: $(GPU_VENV)/.installed

$(GPU_VENV)/.installed: pyproject.toml constraints-gpu.txt $(wildcard plugins/*/*/pyproject.toml)
	test -x $(GPU_PY) || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_PIP) install --quiet --upgrade pip
	$(GPU_PIP) install --quiet -e ".[dev,gpu]" $(foreach p,$(PLUGINS),-e $(p))
	$(GPU_PY) -m compileall -q -j 0 $(GPU_VENV)/lib > /dev/null || true
	touch $@

# Set up, then plain vs liger vs xformers, FSP and S2D on a ~270M Llama in bf16: gpu_suite.md, in under 8 minutes.
gpu-suite:
	scripts/gpu_suite.sh

clean:
	rm -rf $(VENV) $(GPU_VENV) runs
