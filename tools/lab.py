"""Open the workbook in JupyterLab, with this Python as the kernel every notebook names.

    python tools/lab.py [--port 8888]     # register the kernel, then JupyterLab on notebooks/00_tour.ipynb
    python tools/lab.py --no-browser      # other arguments go to jupyter lab
    python tools/lab.py --kernel-only     # only register the kernel

``make lab`` runs it in .venv; a conda environment made from environment.yml runs it as it is. The
kernel "moe-lab (Python)" (name ``moe-lab``) is registered in this Python's own prefix
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


def register_kernel() -> None:
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
                    "--display-name", KERNEL_DISPLAY], check=True, stdout=subprocess.DEVNULL)


def lab_args() -> list[str]:
    """What ``jupyter lab`` is given, run from the checkout: the tour first, the workbook's settings."""
    return ["--notebook-dir=notebooks", "--LabApp.default_url=/lab/tree/00_tour.ipynb",
            f"--LabApp.app_settings_dir={ROOT / '.jupyter' / 'lab' / 'settings'}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


def lab_command(port: int) -> list[str]:
    root = ["--allow-root"] if getattr(os, "geteuid", lambda: 1)() == 0 else []  # Jupyter refuses root
    return [sys.executable, "-m", "jupyter", "lab", *lab_args(), f"--port={port}", *root]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--kernel-only", action="store_true", help="register the kernel and stop")
    args, extra = parser.parse_known_args(argv)
    register_kernel()
    if args.kernel_only:
        print(f'kernel "{KERNEL_DISPLAY}" registered for {sys.executable}')
        return 0
    os.chdir(ROOT)
    cmd = lab_command(args.port) + extra
    os.execv(cmd[0], cmd)  # JupyterLab takes this process over: Ctrl-C reaches it directly


if __name__ == "__main__":
    sys.exit(main())
