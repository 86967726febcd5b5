"""tools/gpu_test.py: its choices without a GPU (the run itself needs one: see docs/testing.md)."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("gpu_test")


def test_quick_is_a_smoke_run_and_the_full_run_covers_everything(tool, tmp_path):
    full = tool.parse_args(["--out", str(tmp_path)])
    assert full.tests == "tests" and not full.no_stress
    assert [p.name[:2] for p in full.notebook_paths] == [f"{n:02d}" for n in range(11)]
    quick = tool.parse_args(["--out", str(tmp_path), "--quick"])
    assert quick.no_stress and [p.name for p in quick.notebook_paths] == ["00_tour.ipynb"]
    assert "tests/core/test_stages.py" in quick.tests
    some = tool.parse_args(["--out", str(tmp_path), "--notebooks", "2,05"])
    assert [p.name[:2] for p in some.notebook_paths] == ["02", "05"]


def test_bad_choices_are_refused_before_anything_runs(tool, tmp_path, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(["--out", str(tmp_path), "--notebooks", "02,99"])
    assert "no notebook numbered 99" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([])
    assert "--out DIR" in capsys.readouterr().err


def test_only_missing_packages_are_installed(tool, tmp_path):
    for name in ("pytest-9.0.0-py3-none-any.whl", "torch-2.0.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                 "surely_not_installed_pkg-1.0-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"")
    install, present = tool.missing_wheels(tmp_path)
    assert [w.name for w in install] == ["surely_not_installed_pkg-1.0-py3-none-any.whl"]
    assert present == ["pytest", "torch"]  # the machine's own are never shadowed


def test_wheels_are_the_notebook_packages_at_pyproject_bounds(tool):
    reqs = {Requirement(r).name: str(Requirement(r).specifier) for r in tool.requirements()}
    assert set(reqs) == set(tool.NOTEBOOK_PACKAGES)
    assert reqs["nbval"] == ">=0.11" and reqs["ipywidgets"] == ">=8.1"


def test_pytest_counts(tool):
    closing = "==== 3 passed, 1 failed, 2 skipped in 4.0s ===="
    assert tool.pytest_counts(closing) == "3 passed, 1 failed, 2 skipped"
    error = "ERROR: file or directory not found: x"
    assert tool.pytest_counts(error) == error
