# moe-lab: `make lab` opens the workbook's student edition, `make test` runs every test (notebooks
# included). Both create a virtual environment in .venv on first use.
# The student edition (student/, opened by `make lab`) has the exercises as stubs for you to write; the
# solution edition (notebooks/, opened by `make solutions`) has their answers and is the tested source.
# Without a GPU the CPU build of torch is installed (torch==2.13.0); with one (nvidia-smi works) the
# environment sees the system's torch.
# TRITON_PIN (e.g. triton==3.6.0) installs that Triton in the environment: `make test-triton` uses it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.moe-lab-installed
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
PORT ?= 8888
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup lint lab solutions test test-fast test-triton triton-suite gpu-wheels gpu-test book bench \
	student browser-deps clean help

help:
	@echo "The student edition (student/) has the exercises as stubs for you to write; the solution"
	@echo "edition (notebooks/) has their answers and is the tested source."
	@echo "make lab        set up .venv and open the student edition in JupyterLab (written on first use,"
	@echo "                updated from notebooks/ on every run; notebooks you changed are kept)"
	@echo "make solutions  open the solution edition (notebooks/) in JupyterLab: the answer key"
	@echo "make student    write or update the student edition in student/ without opening it"
	@echo "make test       set up .venv, run the linter and every test, notebooks included"
	@echo "make book       execute every notebook headless and render HTML into book/"
	@echo "make bench      run the GPU benchmark (python -m moe_lab.measure.bench), results into data/bench/"
	@echo "make test-triton TRITON=3.6.0   the CPU suite under that Triton, in .venv-triton-3.6.0"
	@echo "make gpu-wheels the notebook packages as wheels in .whl/, for a GPU machine without network"
	@echo "make gpu-test OUT=dir   on a GPU machine: GPU tests, every notebook, the stress tool"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "== setting up $(VENV) (first run takes a few minutes) =="
	@if [ -n "$(HAS_GPU)" ]; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
	@if [ -z "$(HAS_GPU)" ] && ! $(PY) -c "import torch" 2>/dev/null; then \
	  echo "== no GPU: installing the CPU build of torch =="; \
	  $(PY) -m pip install -q torch==2.13.0 2> >(grep -v "^WARNING: Location" >&2); fi
	$(PY) -m pip install -q -e '.[lab,dev]' $(TRITON_PIN) 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) tools/lab.py --kernel-only >/dev/null
	@touch $(STAMP)

# The workbook's kernel ("moe-lab (Python)", this .venv), the editions' folders and JupyterLab's
# arguments live in tools/lab.py, which conda users run directly.
.PHONY: kernel
kernel: setup  # for a .venv made before the workbook had its own kernel
	@$(PY) tools/lab.py --kernel-only >/dev/null

# The student edition is written on first use and updated on every run; a notebook you changed is kept
# as you left it (the generator says so, and prints the command that replaces it).
lab: kernel
	$(PY) tools/lab.py --port=$(PORT)

solutions: kernel
	$(PY) tools/lab.py --solutions --port=$(PORT)

browser-deps:
	@bash tools/browser-deps.sh || echo "browser deps unavailable: the browser test will be skipped"

lint: setup
	$(PY) -m ruff check moe_lab tests tools

# In parallel, one worker per core (TEST_JOBS=1: one process); a file's tests, a notebook's cells
# among them, stay on one worker, and files go out in collection order (tests marked long first).
TEST_JOBS ?= auto
PARALLEL = -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

test: setup browser-deps lint
	TQDM_DISABLE=1 MOE_LAB_QUIET=1 $(PY) -m pytest $(PARALLEL) $(PYTEST_ARGS)

test-fast: setup
	TQDM_DISABLE=1 MOE_LAB_QUIET=1 $(PY) -m pytest tests -m "not browser and not slow" $(PARALLEL) $(PYTEST_ARGS)

# The CPU suite (library tests and every notebook, no browser) under another Triton release, in its
# own environment; run at both ends of pyproject's triton range before every release.
TRITON ?=
test-triton:
	@test -n "$(TRITON)" || { echo "usage: make test-triton TRITON=3.6.0"; exit 2; }
	@$(MAKE) --no-print-directory triton-suite VENV=.venv-triton-$(TRITON) TRITON_PIN=triton==$(TRITON)

triton-suite: setup
	@$(PY) -c "import sys, triton; v = triton.__version__; \
	  sys.exit(0 if v == '$(TRITON)' else f'.venv-triton-$(TRITON) holds Triton {v}')"
	TQDM_DISABLE=1 MOE_LAB_QUIET=1 $(PY) -m pytest -m "not browser and not slow" $(PARALLEL) $(PYTEST_ARGS)

# A GPU machine without network: `make gpu-wheels` here, carry .whl/ with the checkout, then
# `make gpu-test OUT=dir` there (its own python3, which holds CUDA torch). See docs/testing.md.
GPU_PYTHON_VERSION ?= 3.12
gpu-wheels:
	$(PYTHON) tools/gpu_test.py --download .whl --python-version $(GPU_PYTHON_VERSION)

gpu-test:
	@test -n "$(OUT)" || { echo "usage: make gpu-test OUT=dir [GPU_TEST_ARGS=--quick]"; exit 2; }
	$(PYTHON) tools/gpu_test.py --out $(OUT) $(GPU_TEST_ARGS)

book: setup
	$(PY) -m moe_lab.workbook.book --out book

bench: setup
	$(PY) -m moe_lab.measure.bench $(BENCH_ARGS)

student: setup
	$(PY) -m moe_lab.workbook.student --out student

# student/ is not removed: it holds the learner's work.
clean:
	rm -rf $(VENV) .venv-triton-* book test-artifacts
