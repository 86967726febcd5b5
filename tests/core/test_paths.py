"""Where data/ and notebooks/ are: the same answer in a checkout and an install, a clear error where a plain
install has none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moe_lab import paths

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_finds_its_own_folders(monkeypatch):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    assert paths.checkout() == REPO
    assert paths.data() == REPO / "data" and paths.data("bench") == REPO / "data" / "bench"
    assert paths.notebooks() == REPO / "notebooks"
    assert paths.shown(REPO / "moe_lab" / "stages" / "tl_full.py") == "moe_lab/stages/tl_full.py"


def test_the_environment_names_another_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    assert paths.data("ep") == tmp_path / "ep"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the package with no checkout around it, as ``pip install .`` leaves it."""
    site = tmp_path_factory.mktemp("site-packages")
    shutil.copytree(REPO / "moe_lab", site / "moe_lab", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _run(site: Path, script: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", paths.DATA_ENV)}
    environ.update(PYTHONPATH=str(site), MOE_LAB_QUIET="1", **env)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environ,
                          cwd=site, timeout=300)


def test_an_install_says_what_is_missing_and_how_to_get_it(installed):
    done = _run(installed, (
        "import moe_lab, torch\n"
        "from moe_lab import paths\n"
        "from moe_lab.measure import results\n"
        "assert paths.checkout() is None\n"
        "ids = torch.tensor([[5, 2]], dtype=torch.int32, device=moe_lab.backend.device())\n"
        "assert moe_lab.recompute_topk_ids_sum_expert_count(ids, 2, 4)[1].tolist() == [1, 0, 0, 1]\n"
        "for call in (paths.data, paths.notebooks, results.load):\n"
        "    try:\n"
        "        call()\n"
        "    except FileNotFoundError as err:\n"
        "        print(type(err).__name__, '|', err)\n"))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("MissingFiles | ") for line in lines), lines
    data, notebooks, load = lines
    for line in (data, load):
        assert "recorded GPU results" in line and str(installed / "moe_lab") in line
        assert "data/ is not part of the package" in line and f"set {paths.DATA_ENV}" in line
    assert "notebooks/ is not part of the package" in notebooks and "git clone" in notebooks


def test_an_install_reads_the_data_folder_it_is_given(installed):
    done = _run(installed, "from moe_lab.measure import results\nprint(len(results.runs()))\n",
                **{paths.DATA_ENV: str(REPO / "data")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) >= 1
