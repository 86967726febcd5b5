"""Shared fixtures of the workbook tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory):
    """A Jupyter kernelspec for this very interpreter, and the environment the notebooks' kernels see
    (for the rest of the session): MOE_LAB_QUIET=1, TQDM_DISABLE=1, the repository on PYTHONPATH, and the
    backend this test process chose."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / "moe-lab-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "moe-lab test", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        jupyter_path = [str(root), os.environ.get("JUPYTER_PATH")]
        patch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, jupyter_path)))
        patch.setenv("MOE_LAB_QUIET", "1")
        patch.setenv("TQDM_DISABLE", "1")
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        yield "moe-lab-test"
