"""The ways in stay in step: pyproject.toml, environment.yml, the Makefile, CI and the README.

environment.yml asks conda for Python and pip only and pip for the Makefile's CPU torch and the project
with its extras, so pyproject.toml holds the one dependency list. Nothing can be installed from conda
channels on the build machines: a slow test installs exactly the file's pip part into a fresh venv
and runs a notebook there with the kernel it names. The kernel library itself installs with torch,
triton and numpy alone; a test imports it with every workbook package blocked, another collects the
tests so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def environment() -> tuple[list[str], list[str]]:
    """environment.yml's ``(conda packages, pip lines)``."""
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = [e for e in env["dependencies"] if not isinstance(e, dict)]
    pip = [line for e in env["dependencies"] if isinstance(e, dict) for line in e.get("pip", [])]
    return conda, pip


def makefile_cpu_torch() -> str:
    """The ``torch==X`` the Makefile installs where there is no GPU."""
    return re.search(r"pip install -q (torch==[\w.]+)", (REPO / "Makefile").read_text()).group(1)


def test_environment_yml_asks_conda_for_python_and_pip_only():
    """conda gives Python and pip; pip installs the CPU torch of the Makefile, then the project with its
    extras: the dependency list is pyproject's alone."""
    project = pyproject()["project"]
    conda, pip = environment()
    assert conda == [f"python{project['requires-python']}", "pip"], conda
    deps = yaml.safe_load((REPO / "environment.yml").read_text())["dependencies"]
    assert deps.index("pip") < next(i for i, e in enumerate(deps) if isinstance(e, dict)), \
        "conda installs the pip: section with conda's pip, which must come first"
    assert pip == ["--extra-index-url https://download.pytorch.org/whl/cpu", makefile_cpu_torch(),
                   "-e .[lab,dev]"], pip
    assert {"lab", "dev"} <= set(project["optional-dependencies"])


@pytest.mark.slow
def test_environment_yml_pip_part_runs_a_notebook_in_a_fresh_venv(tmp_path):
    """What ``conda env create -f environment.yml`` then ``python tools/lab.py`` do, less conda: a fresh
    venv, exactly the pip lines of environment.yml (run as conda runs them, from this folder), the kernel
    registered by tools/lab.py, then notebook 00 executed with the kernel it names."""
    _, pip = environment()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pip) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH")}
    # a user with no kernels of their own; an index this machine cannot reach is skipped at once
    env.update(JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"), PIP_RETRIES="0")
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", "-r", str(requirements)],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    lab = subprocess.run([str(python), "tools/lab.py", "--kernel-only"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert lab.returncode == 0, lab.stderr[-3000:]
    code = """
import json, sys, nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
nb = nbformat.read("notebooks/00_tour.ipynb", as_version=4)
name = nb.metadata.kernelspec.name
spec = KernelSpecManager().get_kernel_spec(name)
nb.cells.append(nbformat.v4.new_code_cell("import sys, torch; print(sys.executable, torch.__version__)"))
NotebookClient(nb, timeout=600, resources={"metadata": {"path": "notebooks"}}).execute()
print(json.dumps({"kernel": name, "argv0": spec.argv[0], "display": spec.display_name,
                  "last": nb.cells[-1].outputs[0]["text"]}))
"""
    run = subprocess.run([str(python), "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["kernel"] == "moe-lab" and got["display"] == "moe-lab (Python)", got
    assert Path(got["argv0"]) == python and got["last"].split()[0] == str(python), got
    assert got["last"].split()[1] == makefile_cpu_torch().split("==")[1] + "+cpu", got


def test_pyproject_declares_the_test_markers():
    options = pyproject()["tool"]["pytest"]["ini_options"]
    markers = {m.split(":")[0].strip() for m in options["markers"]}
    assert {"gpu", "browser", "slow"} <= markers


def makefile_targets() -> dict[str, list[str]]:
    """target -> recipe lines, from a plain reading of the Makefile."""
    targets, current = {}, None
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if match:
            current = match.group(1)
            targets.setdefault(current, [])
        elif line.startswith("\t") and current:
            targets[current].append(line.strip())
        elif line and not line.startswith("#"):
            current = None
    return targets


def test_makefile_has_lab_and_test():
    targets = makefile_targets()
    assert "lab" in targets and "test" in targets
    assert any("tools/lab.py" in line for line in targets["lab"]), targets["lab"]  # it runs jupyter lab
    assert any("-m pytest" in line for line in targets["test"]), targets["test"]
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    assert "lab" in phony and "test" in phony


def test_ci_runs_make_test():
    script = REPO / ".ci" / "run"
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert lines[0].startswith("#!"), ".ci/run needs a shebang"
    assert "make test" in [line for line in lines if not line.startswith("#")]
    assert os.access(script, os.X_OK), ".ci/run must be executable"


def test_readme_starts_with_make_lab_and_make_test():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```[^\n]*\n(.*?)```", readme, re.S)
    assert first_block, "README.md has no code block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert "make lab" in commands and "make test" in commands, first_block.group(1)


def test_readme_testing_section_mentions_the_commands():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing", 1)[1].split("\n## ", 1)[0]
    for command in ("make test", "-m gpu", "pytest"):
        assert command in section, f"the Testing section should show `{command}`"


WORKBOOK_PACKAGES = ("jupyterlab", "notebook", "ipywidgets", "IPython", "matplotlib", "pandas", "tqdm",
                     "nbformat", "nbclient", "nbconvert", "nbval", "ipykernel", "jupyter_client",
                     "jupyter_core", "playwright")
"""The ``lab`` extra and the notebook tools of ``dev``, by import name: what a GPU box may lack."""


def blocking(names) -> str:
    """Python source that makes importing any of ``names`` fail as if it were not installed."""
    return f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {tuple(names)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Block())
"""


def test_library_needs_only_torch_triton_numpy():
    deps = {Requirement(spec).name for spec in pyproject()["project"]["dependencies"]}
    assert deps == {"torch", "triton", "numpy"}, deps
    lab = {Requirement(spec).name for spec in pyproject()["project"]["optional-dependencies"]["lab"]}
    assert {"jupyterlab", "ipywidgets", "matplotlib", "pandas"} <= lab


def test_library_runs_with_workbook_packages_blocked():
    """The drop-in, every stage and the checks import and run with no notebook stack installed."""
    code = blocking(WORKBOOK_PACKAGES) + """
import torch, moe_lab
from moe_lab import routing, verify
ids = routing.uniform(64, 32, 6, seed=1).to(moe_lab.backend.device())
want = verify.reference(ids, 8, 8)
for name in moe_lab.STAGES:
    if name == "row_loop":
        continue  # refuses topk 6 by design
    got = moe_lab.recombine(ids, 8, 8, stage=name)
    assert all(torch.equal(a, b) for a, b in zip(got, want)), name
got = moe_lab.recompute_topk_ids_sum_expert_count(ids, 8, 8)
assert all(torch.equal(a, b) for a, b in zip(got, want))
print("ok")
"""
    env = dict(os.environ, MOE_LAB_QUIET="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_tests_collect_with_workbook_packages_blocked():
    """With the library and the test tools only (a GPU box, say), ``pytest tests`` still collects: each
    module that needs a workbook package is skipped naming it, and the library's own modules collect."""
    code = blocking(WORKBOOK_PACKAGES) + "import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"
    # -p no:nbval: nbval is blocked too, so its plugin is not there (its options in addopts must not fail)
    args = ["--collect-only", "-q", "-rs", "-p", "no:nbval", "tests"]
    env = dict(os.environ, MOE_LAB_QUIET="1")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "error" not in out.stdout.strip().splitlines()[-1], out.stdout[-3000:]
    skipped = dict(re.findall(r"SKIPPED \[\d+\] \S+: (test_\w+\.py) needs (\w+), a workbook package",
                              out.stdout))
    assert set(skipped.values()) <= set(WORKBOOK_PACKAGES), skipped
    assert {"test_student.py", "test_book.py", "test_answers_hidden.py", "test_generators_safe.py",
            "test_explorers.py"} <= set(skipped), skipped
    collected = {Path(line.split("::")[0]).name for line in out.stdout.splitlines() if "::" in line}
    assert {"test_stages.py", "test_inputs.py", "test_reliability.py", "test_backend.py",
            "test_exercises.py", "test_packaging.py"} <= collected, sorted(collected)
    assert not collected & set(skipped), collected & set(skipped)


def test_readme_is_short_and_links_every_doc():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024, \
        "README.md is the pitch and the quick start: move details to docs/"
    for doc in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README.md does not link docs/{doc.name}"


@pytest.mark.parametrize("page", ["README.md", "notebooks/README.md", "data/README.md",
                                  *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))])
def test_relative_links_resolve(page):
    path = REPO / page
    # code blocks and inline code are not links
    prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", path.read_text(), flags=re.S))
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", prose):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{page} links {target}, which does not exist"


def test_every_named_test_file_exists():
    """A test file named in code, docs or notebooks (``tests/core/test_stages.py``, or a glob such as
    ``tests/core/test_dispatch*.py``) is where it says, so a reader who follows the name finds it."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    missing = []
    for name in files:
        if not name.endswith((".py", ".md", ".ipynb", ".toml", ".yml", "Makefile")):
            continue
        text = (REPO / name).read_text(errors="replace")
        for named in set(re.findall(r"\btests/[\w/]*test_[\w*]*\.py", text)):
            if not list(REPO.glob(named)):
                missing.append(f"{name}: {named}")
    assert not missing, "test files named but not there:\n" + "\n".join(sorted(missing))
