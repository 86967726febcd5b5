# moe-lab: `make lab` opens the workbook's student edition, `make test` runs every test (notebooks
# included). Both create a virtual environment in .venv on first use.
# The student edition (student/, opened by `make lab`) has the exercises as stubs for you to write; the
# solution edition (notebooks/, opened by `make solutions`) has their answers and is the tested source. Without a GPU the CPU build of torch is
# installed (torch==2.13.0); with one (nvidia-smi works) the environment sees the system's torch.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.moe-lab-installed
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
PORT ?= 8888
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup lint lab solutions test test-fast book bench student browser-deps clean help

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

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "== setting up $(VENV) (first run takes a few minutes) =="
	@if [ -n "$(HAS_GPU)" ]; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	else $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install -q --upgrade pip 2> >(grep -v "^WARNING: Location" >&2)
	@if [ -z "$(HAS_GPU)" ] && ! $(PY) -c "import torch" 2>/dev/null; then \
	  echo "== no GPU: installing the CPU build of torch =="; \
	  $(PY) -m pip install -q torch==2.13.0 2> >(grep -v "^WARNING: Location" >&2); fi
	$(PY) -m pip install -q -e '.[lab,dev]' 2> >(grep -v "^WARNING: Location" >&2)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "moe-lab (Python)" >/dev/null
	@touch $(STAMP)

# The workbook's kernel ("moe-lab (Python)", this .venv) and JupyterLab's settings for it
# (.jupyter/lab/settings/overrides.json: no news pop-up); Lab opens on the edition's 00_tour.ipynb.
KERNEL_NAME := moe-lab
STUDENT_DIR := student
SOLUTION_DIR := notebooks
LAB_ARGS := --LabApp.default_url=/lab/tree/00_tour.ipynb \
	--LabApp.app_settings_dir=$(CURDIR)/.jupyter/lab/settings \
	--LabApp.news_url= --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate
LAB_SERVER := --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: kernel
kernel: setup  # for a .venv made before the workbook had its own kernel
	@$(PY) -m ipykernel install --sys-prefix --name $(KERNEL_NAME) --display-name "moe-lab (Python)" >/dev/null

# The student edition is written on first use and updated on every run; a notebook you changed is kept
# as you left it (the generator says so, and prints the command that replaces it).
lab: kernel
	$(PY) -m moe_lab.workbook.student --out $(STUDENT_DIR) --quiet
	$(VENV)/bin/jupyter lab --notebook-dir=$(STUDENT_DIR) $(LAB_ARGS) $(LAB_SERVER)

solutions: kernel
	$(VENV)/bin/jupyter lab --notebook-dir=$(SOLUTION_DIR) $(LAB_ARGS) $(LAB_SERVER)

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
	TQDM_DISABLE=1 MOE_LAB_QUIET=1 $(PY) -m pytest tests -m "not browser" $(PARALLEL) $(PYTEST_ARGS)

book: setup
	$(PY) -m moe_lab.workbook.book --out book

bench: setup
	$(PY) -m moe_lab.measure.bench $(BENCH_ARGS)

student: setup
	$(PY) -m moe_lab.workbook.student --out $(STUDENT_DIR)

# student/ is not removed: it holds the learner's work.
clean:
	rm -rf $(VENV) book test-artifacts
