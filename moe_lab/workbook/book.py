"""Build the workbook as a static book: execute every notebook headless, render each to HTML.

    python -m moe_lab.workbook.book --out book               # all of notebooks/*.ipynb, in reading order
    python -m moe_lab.workbook.book --out /tmp/b notebooks/02_first_kernels.ipynb

Each notebook is executed from scratch by a fresh kernel (nbclient), in a copy: the notebooks in
``notebooks/`` are never modified. The book is built in a temporary folder, then ``--out`` is updated
from it (:mod:`moe_lab.workbook.generated`): building again replaces its own earlier output, keeps a file
someone changed since (and says so), and leaves other files alone. ``--out`` is refused (exit status
2) when it is, holds or sits inside the notebooks' folder, or is a folder this tool did not write. The
kernel starts in the notebook's own folder, as in JupyterLab.
The executed copy (``.ipynb``) and its HTML (nbconvert) land in ``--out``, with an ``index.html``
linking them. Without a GPU the kernels run in Triton's interpreter and performance plots use the
recorded GPU results; with one, the notebooks measure live. Exit status 1 if any notebook failed;
the others are still built.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
from pathlib import Path

from moe_lab import paths
from moe_lab.workbook import generated


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def kernel_environment() -> None:
    """Set, in this process's environment (the kernels it starts inherit it), what a headless run
    needs: short logs, no progress bars, and this moe_lab importable even where it is not installed."""
    os.environ.setdefault("MOE_LAB_QUIET", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = str(paths.PACKAGE.parent)
    paths_env = os.environ.get("PYTHONPATH", "")
    if root not in paths_env.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + paths_env if paths_env else "")


def execute(path: Path, *, timeout: int = 600, kernel_name: str | None = None):
    """``(executed notebook, error or None, seconds)``: ``path`` run top to bottom by a fresh kernel that
    starts in the notebook's own folder, as *Run All* in JupyterLab (it stops at the first error, except
    in cells tagged ``raises-exception``). The file itself is not changed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    kwargs = {"timeout": timeout, "resources": {"metadata": {"path": str(Path(path).parent)}}}
    if kernel_name:
        kwargs["kernel_name"] = kernel_name
    started = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, **kwargs).execute()
    except CellExecutionError as err:  # the executed-so-far notebook is kept, error included
        error = str(err).strip()
    return nb, error, time.perf_counter() - started


def build_one(path: Path, out: Path, *, timeout: int = 600, kernel_name: str | None = None) -> dict:
    """Execute ``path`` into ``out/<name>.ipynb`` and render ``out/<name>.html``; return a summary."""
    import nbformat
    from nbconvert import HTMLExporter

    nb, error, seconds = execute(path, timeout=timeout, kernel_name=kernel_name)
    ipynb, page = out / path.name, out / path.with_suffix(".html").name
    nbformat.write(nb, ipynb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    page.write_text(body, encoding="utf-8")
    return {"name": path.stem, "title": _title(nb, path.stem), "html": page, "ipynb": ipynb,
            "seconds": seconds, "error": error}


def write_index(built: list[dict], out: Path) -> Path:
    items = "\n".join(
        f'<li><a href="{html.escape(b["html"].name)}">{html.escape(b["title"])}</a>'
        + (' <b style="color:#c00">(failed)</b>' if b["error"] else "") + "</li>" for b in built)
    index = out / "index.html"
    index.write_text(f"<!doctype html><meta charset='utf-8'><title>moe-lab</title>"
                     f"<h1>moe-lab: the workbook</h1><ol>\n{items}\n</ol>\n", encoding="utf-8")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moe_lab.workbook.book",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to build (default: every notebook of the checkout's notebooks/)")
    parser.add_argument("--out", type=Path, default=Path("book"), help="output folder (default: book)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    args = parser.parse_args(argv)

    try:
        source = paths.notebooks()
    except paths.MissingFiles as err:
        if not args.notebooks:
            print(f"moe_lab.workbook.book: {err}", file=sys.stderr)
            return 1
        source = args.notebooks[0].resolve().parent
    chosen = args.notebooks or sorted(source.glob("[0-9]*.ipynb"))
    if not chosen:
        print(f"no notebooks found in {source}", file=sys.stderr)
        return 1
    missing = [str(p) for p in chosen if not p.is_file()]
    if missing:
        print(f"not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    sources = {p.resolve().parent for p in chosen} | {source.resolve()}
    try:
        names = ["index.html"] + [n for p in chosen for n in (p.name, p.with_suffix(".html").name)]
        generated.check_target(args.out, sorted(sources), kind="book", names=names)
    except generated.RefusedOutput as err:
        print(f"moe_lab.workbook.book: {err}", file=sys.stderr)
        return 2
    kernel_environment()
    built = []
    try:
        with generated.replacing(args.out, sorted(sources), kind="book") as build:
            for path in chosen:
                print(f"executing {path} ...", flush=True)
                b = build_one(path.resolve(), build.tmp, timeout=args.timeout, kernel_name=args.kernel)
                built.append(b)
                state = "FAILED" if b["error"] else "ok"
                print(f"  {state} in {b['seconds']:.1f} s -> {args.out / b['html'].name}", flush=True)
                if b["error"]:
                    print("\n".join("    " + line for line in b["error"].splitlines()[-25:]), file=sys.stderr)
            write_index(built, build.tmp)
    except generated.RefusedOutput as err:
        print(f"moe_lab.workbook.book: {err}", file=sys.stderr)
        return 2
    for kept in build.outcome.kept:
        print(f"{generated.quoted(kept.path)}: kept as you left it (changed since it was built); move it "
              f"out of {generated.quoted(args.out)} to get the new one")
    index = args.out / "index.html"
    failed = [b["name"] for b in built if b["error"]]
    print(f"book written: {index.resolve()}"
          + (f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
