"""Shared test set-up: the backend is chosen first, GPU tests skip cleanly, random seeds are replayable.

* ``import moe_lab`` happens here, before any test module imports a kernel, so that without a GPU
  ``TRITON_INTERPRET=1`` is set before ``@triton.jit`` runs (see ``moe_lab/backend.py``).
* ``@pytest.mark.long`` tests (minutes each) are collected first, so that parallel workers finish together.
* ``@pytest.mark.gpu`` tests are skipped, with the reason "needs a CUDA GPU", where
  ``torch.cuda.is_available()`` is False. Run them on a GPU machine with
  ``python -m pytest -m gpu tests``.
* The ``seed`` fixture draws a fresh seed for every run, so random tests see new inputs each time;
  tests put it in their failure messages. ``MOE_LAB_TEST_SEED=<n>`` replays one run exactly; a run in
  parallel (pytest-xdist) hands its seed to its workers the same way.
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

import pytest
import torch

import moe_lab  # noqa: F401  (chooses the backend before any kernel module is imported)

HAS_CUDA = torch.cuda.is_available()


WORKBOOK_MODULES = frozenset({
    "IPython", "ipykernel", "ipywidgets", "jupyter_client", "jupyter_core", "jupyterlab", "matplotlib",
    "nbclient", "nbconvert", "nbformat", "nbval", "notebook", "pandas", "playwright", "tqdm",
})
"""Top-level modules of the workbook's packages (the ``lab`` extra and the notebook tools of ``dev``): a
test module that cannot import one of them is skipped, naming it, rather than failing to collect."""


def pytest_addoption(parser, pluginmanager):
    # pyproject's addopts name nbval's options; without nbval they would stop pytest before collection
    if not pluginmanager.has_plugin("nbval"):
        group = parser.getgroup("nbval (not installed: notebooks are not collected)")
        for name in ("--nbval-lax", "--nbval-current-env"):
            group.addoption(name, action="store_true", help="ignored: nbval is not installed")


class WorkbookModule(pytest.Module):
    """A test module that is skipped, with the package named, where a workbook package is missing."""

    def collect(self):
        try:
            _ = self.obj  # imports the test module
        except self.CollectError as err:
            missing = err.__cause__  # pytest raises CollectError from the ImportError
            name = getattr(missing, "name", None) or ""
            if isinstance(missing, ModuleNotFoundError) and name.split(".")[0] in WORKBOOK_MODULES:
                pytest.skip(f"{self.path.name} needs {name.split('.')[0]}, a workbook package "
                            f"(pip install -e '.[lab,dev]')", allow_module_level=True)
            raise
        return super().collect()


def pytest_pycollect_makemodule(module_path, parent):
    return WorkbookModule.from_parent(parent, path=module_path)


def pytest_collection_modifyitems(config, items):
    # Tests marked `long` (minutes each) first: run in parallel, each worker starts on one of them and
    # the short ones fill in around, so that no worker is left with a long one at the end.
    items.sort(key=lambda item: "long" not in item.keywords)
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _session_seed() -> int:
    fixed = os.environ.get("MOE_LAB_TEST_SEED")
    if fixed is not None:
        return int(fixed)
    seed = random.SystemRandom().randrange(2**31)
    os.environ["MOE_LAB_TEST_SEED"] = str(seed)  # the parallel workers started from here draw the same
    return seed


SESSION_SEED = _session_seed()


def pytest_report_header(config):
    return (f"moe_lab backend: {moe_lab.backend.BACKEND}; random test seed {SESSION_SEED} "
            f"(replay with MOE_LAB_TEST_SEED={SESSION_SEED})")


@pytest.fixture
def seed(request) -> int:
    """A seed for this test in this run: the session seed mixed with the test's name, so tests differ
    from each other and from run to run, but ``MOE_LAB_TEST_SEED`` replays all of them."""
    return (SESSION_SEED * 1_000_003 + sum(map(ord, request.node.nodeid))) % 2**31


@pytest.fixture
def device() -> torch.device:
    """Where Triton stages take their tensors: CPU under the interpreter, else the GPU."""
    return moe_lab.backend.device()


@pytest.fixture
def replay(seed) -> str:
    """Text for failure messages: which seed failed and how to run the same inputs again."""
    return f"seed={seed} (rerun this input with MOE_LAB_TEST_SEED={SESSION_SEED})"


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("lab")``: the script ``tools/lab.py`` as a module (tools/ is no package)."""
    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"tool_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
