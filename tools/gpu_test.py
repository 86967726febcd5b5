"""Everything that needs a GPU, in one command, on a GPU machine without network access.

    make gpu-wheels                  # where pip reaches PyPI: the notebook packages as wheels in .whl/
    make gpu-test OUT=results        # on the GPU machine, from a checkout holding .whl/
    python3 tools/gpu_test.py --out results [--quick] [--notebooks 02,05] [--no-stress] [--tests "ARGS"]

Runs with the machine's own Python (``python3``, whose CUDA torch and Triton are the ones under test):

1. install: each wheel in ``--wheels`` whose distribution this Python lacks goes into ``--site``
   (``pip --no-index --no-deps --target``); every later step runs with ``PYTHONPATH=<site>:<checkout>``;
2. kernels: ``ipykernel install --user`` for ``moe-lab`` (the kernel every notebook names) and ``python3``;
3. GPU tests: ``pytest -m gpu tests``;
4. notebooks: each notebook under nbval (lax, current environment), one pytest run per notebook;
5. stress: the stress tool's short mode (``--trials 50 --rounds 1``).

Logs go to ``OUT/<step>.log``, the stress CSVs to ``OUT/stress/``; ``OUT/summary.txt`` holds the table
printed last. Exits 1 if any step failed. ``--quick`` is a smoke run (about 30 s on an H200): the GPU
tests of two kinds (CUDA input refused by the interpreter, ``best`` in a CUDA graph), notebook 00, no
stress.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_PACKAGES = ("nbval", "nbclient", "nbformat", "ipykernel", "ipywidgets")
"""What running the notebooks under nbval needs beyond a CUDA machine's usual Python (torch, numpy,
pandas, matplotlib, pytest): downloaded with their dependencies, at pyproject's version bounds."""
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_34_x86_64", "manylinux1_x86_64")
KERNEL = ("moe-lab", "moe-lab (Python)")  # the kernelspec every notebook names
STRESS_SHORT = ["--trials", "50", "--rounds", "1"]
QUICK_TESTS = "tests/core/test_inputs.py tests/core/test_stages.py -k 'cuda_tensor or best_in_cuda_graph'"
QUICK_NOTEBOOKS = ["00"]
HEADER = [""]  # the run's first line: date, versions, card
NBVAL = ["-o", "addopts=", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for the logs, the stress CSVs and summary.txt")
    parser.add_argument("--download", metavar="DIR", help="only download the wheels into DIR (needs network)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python, for --download")
    parser.add_argument("--wheels", default=str(ROOT / ".whl"), help="folder of wheels (make gpu-wheels)")
    parser.add_argument("--site", default="/tmp/moe-lab-site", help="where the missing wheels are installed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: two kinds of GPU test, notebook 00, no stress")
    parser.add_argument("--tests", default="tests", help="pytest arguments for the GPU tests, one string "
                        "(default: tests)")
    parser.add_argument("--notebooks", default=None, help="comma list of notebook numbers (default: all)")
    parser.add_argument("--no-stress", action="store_true", help="skip the stress tool")
    args = parser.parse_args(argv)
    if not args.out and not args.download:
        parser.error("give --out DIR (run the tests) or --download DIR (fetch the wheels)")
    if args.quick:
        args.tests = QUICK_TESTS if args.tests == "tests" else args.tests
        args.notebooks = args.notebooks or ",".join(QUICK_NOTEBOOKS)
        args.no_stress = True
    args.notebook_paths = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        wanted = {n.strip().zfill(2) for n in args.notebooks.split(",")}
        unknown = wanted - {p.name[:2] for p in args.notebook_paths}
        if unknown:
            parser.error(f"--notebooks: no notebook numbered {', '.join(sorted(unknown))} in notebooks/")
        args.notebook_paths = [p for p in args.notebook_paths if p.name[:2] in wanted]
    return args


def requirements() -> list[str]:
    """:data:`NOTEBOOK_PACKAGES` with the version bounds pyproject.toml gives them."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    specs = {re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower(): spec for group in extras.values()
             for spec in group}
    return [specs.get(name, name) for name in NOTEBOOK_PACKAGES]


def download(folder: Path, python_version: str) -> int:
    """Wheels of :func:`requirements` and their dependencies for CPython ``python_version`` on x86-64
    Linux into ``folder`` (its old wheels removed first: two versions of one package stop the install)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.whl"):
        old.unlink()
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python_version, *platforms, "-d", str(folder), *requirements()]
    rc = subprocess.run(cmd).returncode
    wheels = sorted(folder.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {folder}" if rc == 0 else f"pip download failed ({rc})")
    return rc


def missing_wheels(folder: Path) -> tuple[list[Path], list[str]]:
    """``(wheels to install, names this Python already has)``: a wheel is installed only where its
    distribution is absent, so the machine's own torch, numpy, pytest... are never shadowed."""
    install, present = [], []
    for wheel in sorted(folder.glob("*.whl")):
        name = wheel.name.split("-")[0]
        try:
            metadata.distribution(name)
            present.append(name)
        except metadata.PackageNotFoundError:
            install.append(wheel)
    return install, present


def run(cmd, log: Path, env: dict, timeout: float) -> tuple[int, float, str]:
    """Run ``cmd`` with its output appended to ``log``: ``(exit code, seconds, last line)``."""
    start = time.time()
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        try:
            rc = subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write(f"\nstopped after {timeout:.0f} s\n")
            rc = 124
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return rc, time.time() - start, lines[-1].strip() if lines else ""


def pytest_counts(line: str) -> str:
    """pytest's closing line reduced to its counts ('3 passed, 1 failed'), or the line itself."""
    found = re.findall(r"\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed)", line)
    return ", ".join(found) if found else line[-80:]


def versions() -> str:
    code = ("import torch, triton, sys; print(f'Python {sys.version.split()[0]}, torch {torch.__version__}, "
            "Triton {triton.__version__}, ' + (torch.cuda.get_device_name() if torch.cuda.is_available() "
            "else 'no CUDA GPU'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True) if _has("nvidia-smi") else None
    driver = f", driver {smi.stdout.strip()}" if smi is not None and smi.returncode == 0 else ""
    return (out.stdout.strip() or out.stderr.strip()[-200:]) + driver


def _has(program: str) -> bool:
    return any(os.access(os.path.join(p, program), os.X_OK) for p in os.environ.get("PATH", "").split(":"))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.download:
        return download(Path(args.download), args.python_version)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    site = Path(args.site)
    path = os.pathsep.join(p for p in [str(site), str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
    env = dict(os.environ, PYTHONPATH=path, TQDM_DISABLE="1", MOE_LAB_QUIET="1", PYTHONUNBUFFERED="1")
    rows = []  # (step, exit code, seconds, detail)
    HEADER[:] = [f"moe-lab GPU test, {_dt.datetime.now().isoformat(timespec='seconds')}: {versions()}"]

    install, present = missing_wheels(Path(args.wheels))
    log = out / "install.log"
    log.write_text(f"already here, not installed: {', '.join(present) or '-'}\n")
    if install:
        rc, secs, last = run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                              "--no-compile", "--upgrade", "--target", site, *install], log, env, 600)
    else:
        rc, secs, last = 0, 0.0, "nothing to install"
    rows.append(("install", rc, secs, f"{len(install)} wheels into {site}" if rc == 0 else last))
    write_summary(out, rows)
    for name, display in (KERNEL, ("python3", "Python 3 (ipykernel)")):
        rc, secs, last = run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", name,
                              "--display-name", display, "--env", "PYTHONPATH", env["PYTHONPATH"]],
                             log, env, 120)
        rows.append((f"kernel {name}", rc, secs, f'"{display}" for {sys.executable}' if rc == 0 else last))
        write_summary(out, rows)

    tests = shlex.split(args.tests)
    rc, secs, last = run([sys.executable, "-m", "pytest", "-m", "gpu", "-o", "addopts=", "-p",
                          "no:cacheprovider", "-ra", *tests], out / "gpu-tests.log", env, 3600)
    rows.append(("GPU tests", rc, secs, pytest_counts(last)))
    write_summary(out, rows)

    for path in args.notebook_paths:
        rc, secs, last = run([sys.executable, "-m", "pytest", *NBVAL, path.relative_to(ROOT)],
                             out / "notebooks.log", env, 1800)
        rows.append((path.stem, rc, secs, pytest_counts(last)))
        write_summary(out, rows)

    if not args.no_stress:
        rc, secs, last = run([sys.executable, "-m", "moe_lab.measure.stress", "--out", out / "stress",
                              *STRESS_SHORT],
                             out / "stress.log", env, 1800)
        rows.append(("stress (short)", rc, secs, last[-80:]))

    print(write_summary(out, rows))
    return 1 if any(rc != 0 for _, rc, _, _ in rows) else 0


def write_summary(out: Path, rows) -> str:
    """The table so far into ``out/summary.txt`` (rewritten after every step, so a run stopped half-way
    still says how far it got); returns it."""
    failed = [step for step, rc, _, _ in rows if rc != 0]
    width = max(len(step) for step, *_ in rows)
    table = [HEADER[0], ""]
    table += [f"{step:{width}}  {'ok' if rc == 0 else f'FAIL({rc})':8} {secs:7.1f}s  {detail}"
              for step, rc, secs, detail in rows]
    table += ["", f"{len(rows) - len(failed)} steps passed, {len(failed)} failed"
              + (f": {', '.join(failed)}" if failed else "")]
    (out / "summary.txt").write_text("\n".join(table) + "\n")
    return "\n".join(table)


if __name__ == "__main__":
    sys.exit(main())
