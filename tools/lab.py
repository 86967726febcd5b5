"""Open the workbook in JupyterLab, with this Python as the kernel every notebook names.

    python tools/lab.py [--port 8888]     # the student edition: written or updated, then Lab on its 00
    python tools/lab.py --solutions       # the solution edition (notebooks/): the answer key
    python tools/lab.py --no-browser      # other arguments go to jupyter lab
    python tools/lab.py --kernel-only     # only register the kernel

The student edition (``student/``) has the exercises as stubs for you to write; it is written on first
use and updated on every run, and a notebook you changed is kept as you left it (the generator says so).
The solution edition (``notebooks/``) has their answers and is the tested source.

``make lab`` and ``make solutions`` run it in .venv; a conda environment made from environment.yml runs
it as it is. The kernel "moe-lab (Python)" (name ``moe-lab``) is registered in this Python's own prefix
(``ipykernel install --sys-prefix``), so each environment has its own and none is shared through the
home folder. JupyterLab uses the workbook's settings (``.jupyter/lab/settings``: no news pop-up).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME, KERNEL_DISPLAY = "moe-lab", "moe-lab (Python)"
EDITIONS = {"student": "student", "solution": "notebooks"}
"""Each edition's folder, relative to the checkout."""


def register_kernel() -> None:
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                    "--display-name", KERNEL_DISPLAY], check=True, stdout=subprocess.DEVNULL)


def lab_args(edition: str = "student") -> list[str]:
    """What ``jupyter lab`` is given, run from the checkout: the edition's tour first, the workbook's
    settings."""
    return [f"--notebook-dir={EDITIONS[edition]}", "--LabApp.default_url=/lab/tree/00_tour.ipynb",
            f"--LabApp.app_settings_dir={ROOT / '.jupyter' / 'lab' / 'settings'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


def commands(edition: str = "student", port: int = 8888, extra=()) -> list[list[str]]:
    """What this tool runs from the checkout, in order: the student edition written or updated (for that
    edition), then JupyterLab."""
    root = ["--allow-root"] if getattr(os, "geteuid", lambda: 1)() == 0 else []  # Jupyter refuses root
    write = [[sys.executable, "-m", "moe_lab.workbook.student", "--out", EDITIONS["student"], "--quiet"]]
    lab = [sys.executable, "-m", "jupyter", "lab", *lab_args(edition), f"--port={port}", *root, *extra]
    return (write if edition == "student" else []) + [lab]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--solutions", action="store_true",
                        help="open the solution edition (notebooks/) instead of the student edition")
    parser.add_argument("--kernel-only", action="store_true", help="register the kernel and stop")
    args, extra = parser.parse_known_args(argv)
    register_kernel()
    if args.kernel_only:
        print(f'kernel "{KERNEL_DISPLAY}" registered for {sys.executable}')
        return 0
    os.chdir(ROOT)
    *before, lab = commands("solution" if args.solutions else "student", args.port, extra)
    for cmd in before:
        done = subprocess.run(cmd)
        if done.returncode:
            return done.returncode  # the generator said why (e.g. a file it did not write is in the way)
    os.execv(lab[0], lab)  # JupyterLab takes this process over: Ctrl-C reaches it directly


if __name__ == "__main__":
    sys.exit(main())
