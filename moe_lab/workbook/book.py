"""Build the workbook as a static book: execute every notebook headless, render each to HTML.

    python -m moe_lab.workbook.book --out book               # all of notebooks/*.ipynb, in reading order
    python -m moe_lab.workbook.book --out /tmp/b notebooks/02_first_kernels.ipynb

Each notebook is executed from scratch by a fresh kernel (nbclient), in a copy: the notebooks in
``notebooks/`` are never modified. The book is built in a temporary folder that replaces ``--out`` only
when complete, and ``--out`` is refused (exit status 2) when it is, holds or sits inside the notebooks'
folder, or holds files this tool did not write (:mod:`moe_lab.workbook.generated`). The kernel starts in the
notebook's own folder, as in JupyterLab.
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


def build_one(path: Path, out: Path, *, timeout: int = 600, kernel_name: str | None = None) -> dict:
    """Execute ``path`` into ``out/<name>.ipynb`` and render ``out/<name>.html``; return a summary."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    kwargs = {"timeout": timeout, "resources": {"metadata": {"path": str(path.parent)}}}
    if kernel_name:
        kwargs["kernel_name"] = kernel_name
    started = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, **kwargs).execute()
    except CellExecutionError as err:  # the executed-so-far notebook is still rendered, error included
        error = str(err).strip()
    seconds = time.perf_counter() - started
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
        generated.check_target(args.out, sorted(sources), kind="book")
    except generated.RefusedOutput as err:
        print(f"moe_lab.workbook.book: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("MOE_LAB_QUIET", "1")   # the kernel inherits these
    os.environ.setdefault("TQDM_DISABLE", "1")
    # The kernel imports this moe_lab even where the package is not installed.
    root = str(paths.PACKAGE.parent)
    paths_env = os.environ.get("PYTHONPATH", "")
    if root not in paths_env.split(os.pathsep):
        os.environ["PYTHONPATH"] = root + (os.pathsep + paths_env if paths_env else "")
    built = []
    try:
        with generated.replacing(args.out, sorted(sources)[0], kind="book") as tmp:
            generated.check_target(args.out, sorted(sources), kind="book")
            for path in chosen:
                print(f"executing {path} ...", flush=True)
                b = build_one(path.resolve(), tmp, timeout=args.timeout, kernel_name=args.kernel)
                built.append(b)
                state = "FAILED" if b["error"] else "ok"
                print(f"  {state} in {b['seconds']:.1f} s -> {args.out / b['html'].name}", flush=True)
                if b["error"]:
                    print("\n".join("    " + line for line in b["error"].splitlines()[-25:]), file=sys.stderr)
            write_index(built, tmp)
    except generated.RefusedOutput as err:
        print(f"moe_lab.workbook.book: {err}", file=sys.stderr)
        return 2
    index = args.out / "index.html"
    failed = [b["name"] for b in built if b["error"]]
    print(f"book written: {index.resolve()}"
          + (f" ({len(failed)} failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
