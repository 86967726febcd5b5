"""Where the workbook's files are: the recorded GPU data and the notebooks, in a checkout or an install.

Every module that reads or writes ``data/`` or reads ``notebooks/`` asks here, so a checkout, an
editable install and a plain ``pip install .`` resolve them the same way:

* ``$MOE_LAB_DATA``, when set, is the data folder (it holds ``bench/``, ``dispatch/``, ``ep/``, ...);
* otherwise the folders beside this package, when it sits in a checkout of the repository (a
  ``pyproject.toml`` next to it): ``<checkout>/data`` and ``<checkout>/notebooks``.

A plain install has no checkout around it, and the data and notebooks are not part of the package: asking
for them then raises :class:`MissingFiles`, which says what is missing and how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MOE_LAB_DATA"
"""Environment variable naming another data folder (with ``bench/``, ``dispatch/``, ... inside)."""

PACKAGE = Path(__file__).resolve().parent
"""The ``moe_lab`` package folder this module was imported from."""


class MissingFiles(FileNotFoundError):
    """The data or notebooks folder asked for is not where this install can find it."""


def checkout() -> Path | None:
    """The repository checkout this package sits in, or None for a plain install."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "moe_lab").is_dir() else None


def _missing(what: str, folder: str) -> MissingFiles:
    return MissingFiles(
        f"moe_lab's {what} are not here: this moe_lab is installed at {PACKAGE} with no checkout of the "
        f"repository around it, and {folder}/ is not part of the package. Work from a checkout "
        f"(git clone, then `pip install -e .` or `make lab`)"
        + (f", or set {DATA_ENV} to a copy of a checkout's data/ folder." if folder == "data" else "."))


def data(*parts: str) -> Path:
    """The data folder (or ``parts`` below it: ``data("bench")``); see the module docstring."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().joinpath(*parts)
    root = checkout()
    if root is None:
        raise _missing("recorded GPU results", "data")
    return root.joinpath("data", *parts)


def notebooks() -> Path:
    """The solution edition's folder, ``<checkout>/notebooks``."""
    root = checkout()
    if root is None or not (root / "notebooks").is_dir():
        raise _missing("notebooks", "notebooks")
    return root / "notebooks"


def shown(path: str | os.PathLike) -> str:
    """``path`` as a reader should see it: relative to the checkout (or to the package's parent)."""
    base = checkout() or PACKAGE.parent
    try:
        return str(Path(path).resolve().relative_to(base))
    except ValueError:
        return str(path)


__all__ = ["DATA_ENV", "PACKAGE", "MissingFiles", "checkout", "data", "notebooks", "shown"]
