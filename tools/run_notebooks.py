"""Restart-and-run-all for every notebook, headless (nbclient), on whatever machine this is.

    python tools/run_notebooks.py OUT_DIR [notebooks/NN_*.ipynb ...]

Executes copies (the committed notebooks are not touched), writes the executed copies to OUT_DIR,
prints one line per notebook (status, seconds) and exits 1 if any failed. Run it on a GPU machine to
check that the notebooks also run top to bottom there, with real sizes and live timings.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
paths = [Path(p) for p in sys.argv[2:]] or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
failed = 0
for path in paths:
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        status = "ok"
    except CellExecutionError as err:
        failed += 1
        status = "FAILED: " + str(err).strip().splitlines()[-1][:300]
    nbformat.write(nb, out / path.name)
    print(f"{path.name:40s} {time.time() - start:6.1f}s {status}", flush=True)
sys.exit(1 if failed else 0)
