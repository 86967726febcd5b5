"""The student edition in a real browser at 1280x720: JupyterLab + headless Chromium, driven by Playwright.

``make lab`` lands a learner in the student edition's ``00_tour.ipynb``: the first test runs ``make
lab``'s own generator and server arguments (read from ``make -n lab``) and looks at the landing page.
Then one JupyterLab server (loopback, a random port and token, a private settings/kernel folder, the
workbook's own ``.jupyter/lab/settings``) serves the student edition (written by
:mod:`moe_lab.workbook.student`), and the test drives what a browser adds to a headless run: the tour
(00), one exercise notebook (03) and the explorers (09). Every notebook of both editions already runs
headless: nbval runs the solution edition, ``test_student_run.py`` the student edition. For each
notebook, one at a time, the test opens it in Debian's Chromium through Playwright (no browser is
downloaded), runs all cells as a learner would (*Run > Run All Cells*) and checks:

* every cell ran, and no cell shows an stderr box or a traceback (except cells tagged
  ``raises-exception``);
* every explorer control shows its value (a dropdown's label, a slider's readout, an active toggle);
* after a control moves, the explorer redraws and its figure is in view without scrolling;
* no news pop-up covers the notebook.

Screenshots of what the learner sees go to ``test-artifacts/browser/``: ``EDITION-NOTEBOOK.png``
(the top of the notebook after the run), ``...-figure.png`` (its first figure, or else its first table) and
``...-EXPLORER.png`` (each explorer after a control moved). The server, its kernels and the browser
are stopped in ``finally``.

Skipped, saying why, only where Chromium or Playwright's Python package is missing (``make test``
first runs ``tools/browser-deps.sh``, which installs Chromium with apt where it can).
``MOE_LAB_BROWSER_NOTEBOOKS=00,05,09`` picks other notebooks (by number prefix);
``MOE_LAB_BROWSER_NOTEBOOKS=all`` drives every notebook of both editions.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
LAB_APP_SETTINGS = ROOT / ".jupyter" / "lab" / "settings"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 720}
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
KERNEL = {"name": "moe-lab", "display_name": "moe-lab (Python)"}
SERVER_START_S = 90
KERNEL_START_S = 120
RUN_ALL_S = 420
REDRAW_S = 90
STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


DRIVEN = "00,03,09"
"""The notebooks driven by default: the tour, one exercise notebook, the explorers."""


def _selected(names: str) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if names.strip() != "all":
        wanted = {n.strip() for n in names.split(",") if n.strip()}
        paths = [p for p in paths if p.stem.split("_")[0] in wanted or p.stem in wanted]
    return paths


_CHOICE = os.environ.get("MOE_LAB_BROWSER_NOTEBOOKS") or DRIVEN
SELECTED = _selected(_CHOICE)
EDITIONS = ("student", "solution") if _CHOICE.strip() == "all" else ("student",)

pytestmark = [pytest.mark.browser, pytest.mark.long, pytest.mark.timeout(RUN_ALL_S + 4 * REDRAW_S + 300)]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "chromium-headless-shell"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


USER_SETTINGS = {  # start the kernel without asking and render every cell (no windowing)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        '{"autoStartDefaultKernel": true, "windowingMode": "none"}',
}


def write_home(home: Path) -> None:
    """Private settings, and the workbook's kernel spec pointing at this Python."""
    for name, text in USER_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    spec = home / "data" / "kernels" / KERNEL["name"] / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": KERNEL["display_name"], "language": "python"}))


def start_lab(root_dir: Path, home: Path, port: int, token: str, log) -> subprocess.Popen:
    write_home(home)
    env = {k: v for k, v in os.environ.items() if k != "MOE_LAB_QUIET"}  # as a learner starts it
    env.update({
        "TQDM_DISABLE": "1",
        # a private config/data/runtime/settings/workspace: nothing from the user's own JupyterLab
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root_dir}", f"--LabApp.app_settings_dir={LAB_APP_SETTINGS}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    return subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_server(proc, port, token, log_path):
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer on port {port} within {SERVER_START_S}s:\n"
                f"{log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop the server we started (it shuts its kernels down), then anything left in its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # jupyter asks to confirm; a second ^C shuts down
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # kernels, if the server left any behind
    except (ProcessLookupError, PermissionError):
        pass


class Lab:
    """The running server and browser the notebooks share."""

    def __init__(self, root, port, token, log_path, browser):
        self.root, self.port, self.token, self.log_path, self.browser = root, port, token, log_path, browser

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}?token={self.token}", method=method)
        with urllib.request.urlopen(req, timeout=20) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self):
        """End every session (and its kernel), so that one notebook's kernel never runs beside the next."""
        for s in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{s['id']}")

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's chromium (tools/browser-deps.sh, run by make test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"the playwright Python package is missing ({err}); pip install -e '.[dev]'")
    from moe_lab.workbook.student import make_student_edition

    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "nb"
    make_student_edition(NOTEBOOKS, root / "student")
    if "solution" in EDITIONS:
        shutil.copytree(NOTEBOOKS, root / "solution", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("solution-*.png"), *ARTIFACTS.glob("student-*.png")]:  # this run's only
        old.unlink()
    port, token = free_port(), secrets.token_hex(16)
    sigint = signal.getsignal(signal.SIGINT)  # the browser's driver may leave SIGINT ignored: put it back
    log_path = tmp / "jupyter.log"
    with open(log_path, "w") as log:
        server = start_lab(root, tmp / "home", port, token, log)
    try:
        wait_for_server(server, port, token, log_path)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                yield Lab(root, port, token, log_path, browser)
            finally:
                browser.close()
    finally:
        stop(server)
        shutil.copy(log_path, ARTIFACTS / "jupyter.log")
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)


def wait_for_kernel(page, lab, shot):
    """Until the notebook's kernel is connected and idle (Lab shows "idle" with "No Kernel" too,
    before the kernel has started, so the kernel's name must be there as well, twice in a row)."""
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    kernel_name = page.locator(".jp-Toolbar-kernelName")
    deadline = time.monotonic() + KERNEL_START_S
    ready_before = False
    while True:
        dialog = page.locator(".jp-Dialog")
        assert not dialog.count() or "Select Kernel" not in dialog.first.inner_text(), (
            "Lab asks for a kernel: the notebook's kernelspec is not the workbook's")
        names = kernel_name.all_inner_texts()
        ready = idle.count() == 1 and any(KERNEL["display_name"] in n or "Python" in n for n in names)
        if ready and ready_before:
            return
        ready_before = ready
        if time.monotonic() > deadline:
            page.screenshot(path=str(shot("kernel-timeout")))
            pytest.fail(f"the notebook's kernel was not ready within {KERNEL_START_S}s (kernel {names}):\n"
                        f"{lab.log_tail()}")
        time.sleep(1)


def code_cells_of(path: Path) -> list[dict]:
    """The notebook's code cells in order, as Lab renders them: ``{"empty", "raises"}`` each."""
    nb = json.loads(path.read_text())
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            cells.append({"empty": not src.strip(),
                          "raises": "raises-exception" in c.get("metadata", {}).get("tags", [])})
    return cells


def run_all(page, lab, expected, shot):
    """Run > Run All Cells, until every non-empty code cell has a number and the kernel is idle."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    prompts_loc = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    deadline = time.monotonic() + RUN_ALL_S
    idle_polls = 0
    time.sleep(1)
    while True:
        prompts = [p.strip().strip("[]:").strip() for p in prompts_loc.all_inner_texts()]
        assert len(prompts) == len(expected), (f"Lab shows {len(prompts)} code cells, "
                                               f"the file has {len(expected)}")
        done = all(p.isdigit() for p, c in zip(prompts, expected) if not c["empty"])
        busy = any(p == "*" for p in prompts)
        if done and idle.count() == 1:
            return
        idle_polls = idle_polls + 1 if (idle.count() == 1 and not busy) else 0
        if idle_polls >= 5:  # idle, nothing queued, cells left unrun: Run All stopped at an error
            errors = page.locator(STDERR).all_inner_texts()
            page.screenshot(path=str(shot("stopped")))
            pytest.fail("Run All stopped before the end (prompts " + " ".join(prompts) + "):\n"
                        + "\n".join(errors)[:3000])
        if time.monotonic() > deadline:
            page.screenshot(path=str(shot("run-all-timeout")))
            pytest.fail(f"Run All did not finish in {RUN_ALL_S}s: prompts {prompts}\n{lab.log_tail()}")
        time.sleep(1)


def stderr_boxes(page, expected) -> list[str]:
    """The text of every stderr box (warnings, tracebacks) in cells not tagged raises-exception."""
    found = []
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    for i, c in enumerate(expected):
        if c["raises"]:
            continue
        boxes = cells.nth(i).locator(STDERR)
        if boxes.count():
            found += [f"code cell {i}: {t}" for t in boxes.all_inner_texts()]
    return found


# --------------------------------------------------------------------------------------------
# explorers

# What each kind of control shows as its value, read in the page (one function for every widget).
CONTROL_VALUES_JS = """grid => Array.from(grid.children).map(w => {
  const label = (w.querySelector('.widget-label') || {}).innerText || '';
  const sel = w.querySelector('select');
  const readout = w.querySelector('.widget-readout');
  const active = w.querySelector('.mod-active');
  const input = w.querySelector('input');
  let value = '';
  if (readout) value = readout.innerText;
  else if (sel && sel.multiple) value = Array.from(sel.selectedOptions).map(o => o.text).join(',');
  else if (sel) value = sel.selectedIndex >= 0 ? sel.options[sel.selectedIndex].text : '';
  else if (active) value = active.innerText;
  else if (input) value = input.value;
  const r = (readout || sel || active || input || w).getBoundingClientRect();
  return {label: label.trim(), value: (value || '').trim(), width: r.width};
})"""

VIEW_RECT_JS = """view => {
  const shown = view.querySelector('img') || view.querySelector('.jp-RenderedHTMLCommon') || view;
  const r = shown.getBoundingClientRect();
  const panel = view.closest('.jp-WindowedPanel-outer, .jp-Notebook').getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, height: r.height, panelTop: panel.top,
          panelBottom: Math.min(panel.bottom, window.innerHeight)};
}"""


def view_signature(view) -> str:
    """What the explorer's output shows now: the image's data, or the HTML."""
    return view.evaluate("v => { const i = v.querySelector('img'); return i ? i.src : v.innerHTML; }")


def move_a_control(page, grid) -> str:
    """Move one control as a learner would: a slider by the keyboard, else the next dropdown option."""
    sliders = grid.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle")
    for i in range(sliders.count()):
        handle = sliders.nth(i)
        label = handle.evaluate("h => (h.closest('.widget-inline-hbox').querySelector('.widget-label') || {})"
                                ".innerText")
        if label and label.strip() == "skew":  # the control that changes the picture most
            handle.focus()
            page.keyboard.press("ArrowRight")
            return "skew"
    if sliders.count():
        sliders.first.focus()
        page.keyboard.press("ArrowRight")
        return "a slider"
    toggles = grid.locator(".widget-toggle-buttons button:not(.mod-active)")
    if toggles.count():
        toggles.first.click()
        return "a toggle"
    select = grid.locator(".widget-dropdown select").first
    options = select.evaluate("s => Array.from(s.options).map(o => o.value)")
    current = select.evaluate("s => s.value")
    select.select_option(next(o for o in options if o != current))
    return "a dropdown"


def check_explorers(page, shot, stem) -> int:
    """Every explorer: each control shows a value; after a move it redraws and stays in view."""
    grids = page.locator(".moe-lab-controls")
    problems = []
    for g in range(grids.count()):
        grid = grids.nth(g)
        explorer = grid.locator("xpath=..")
        view = explorer.locator(".moe-lab-view")
        for c in grid.evaluate(CONTROL_VALUES_JS):
            if not c["value"] or c["width"] < 24:
                problems.append(f"explorer {g}: control {c['label']!r} shows no value ({c})")
        explorer.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        before = view_signature(view)
        moved = move_a_control(page, grid)
        deadline = time.monotonic() + REDRAW_S
        while view_signature(view) == before or not view.locator("img, .jp-RenderedHTMLCommon").count():
            if time.monotonic() > deadline:
                page.screenshot(path=str(shot(f"explorer{g}-timeout")))
                pytest.fail(f"{stem}: explorer {g} did not redraw within {REDRAW_S}s of moving {moved}")
            time.sleep(0.5)
        page.wait_for_timeout(500)  # the image decodes and takes its size
        rect = view.evaluate(VIEW_RECT_JS)
        page.screenshot(path=str(shot(f"explorer{g}")))
        inside = rect["panelTop"] - 1 <= rect["top"] and rect["bottom"] <= rect["panelBottom"] + 1
        if rect["height"] < 50 or not inside:
            problems.append(f"explorer {g}: after moving {moved} the view is not in view without scrolling "
                            f"({rect})")
    assert not problems, f"{stem}:\n" + "\n".join(problems)
    return grids.count()


# --------------------------------------------------------------------------------------------
# the tests


def make_lab_commands(load_tool) -> tuple[list[str], list[str]]:
    """``make lab``'s two commands (``tools/lab.py``'s): the one that writes the student edition and
    JupyterLab's, each as words without the interpreter."""
    write, lab = load_tool("lab").commands("student")
    return write[1:], lab[4:]


def test_make_lab_lands_in_the_student_editions_tour_without_a_news_pop_up(tmp_path, monkeypatch, load_tool):
    """``make lab``'s own commands: the student edition is written, Lab opens its 00_tour, the file browser
    shows the student edition, no pop-up."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's chromium (tools/browser-deps.sh, run by make test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"the playwright Python package is missing ({err}); pip install -e '.[dev]'")
    from moe_lab.workbook import student

    write, args = make_lab_commands(load_tool)
    assert write[:2] == ["-m", "moe_lab.workbook.student"], write
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with monkeypatch.context() as inside:
        inside.chdir(tmp_path)  # make lab runs it from the repository root: here, a folder of the test's own
        assert student.main(write[2:]) == 0
    folder = next(a.split("=", 1)[1] for a in args if a.startswith("--notebook-dir="))
    manifest = json.loads((tmp_path / folder / ".moe_lab-generated.json").read_text())
    assert manifest["kind"] == "student edition" and "00_tour.ipynb" in manifest["files"], manifest
    args = [a for a in args if not a.startswith(("--port=", "--allow-root"))]
    home = tmp_path / "home"
    write_home(home)
    (home / "settings" / next(iter(USER_SETTINGS))).write_text('{"autoStartDefaultKernel": false}')
    port, token = free_port(), secrets.token_hex(16)
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    log_path = tmp_path / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", *args, "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        wait_for_server(server, port, token, log_path)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"http://127.0.0.1:{port}/?token={token}", wait_until="domcontentloaded",
                          timeout=60_000)
                tab = page.locator(".lm-TabBar-tabLabel", has_text="00_tour.ipynb")
                tab.first.wait_for(timeout=60_000)
                page.locator(".jp-Notebook .jp-MarkdownCell").first.wait_for(timeout=60_000)
                listing = page.locator(".jp-DirListing-itemText")
                listing.first.wait_for(timeout=30_000)
                names = listing.all_inner_texts()
                tab_labels = page.locator(".lm-DockPanel .lm-TabBar-tabLabel").all_inner_texts()
                tabs = [t.strip() for t in tab_labels]
                page.wait_for_timeout(3000)  # a news pop-up, if any, would be up by now
                page.screenshot(path=str(ARTIFACTS / "make-lab-landing.png"))
                toasts = [t for t in page.locator(".jp-toast-container, .Toastify__toast").all_inner_texts()
                          if t.strip()]
            finally:
                browser.close()
    finally:
        stop(server)
    assert any(n.startswith("00_tour") for n in names) and "README.md" in names, names
    assert "Launcher" not in tabs and any("00_tour" in t for t in tabs), f"open tabs: {tabs}"
    assert not toasts, f"a pop-up covers the notebook: {toasts}"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("notebook", SELECTED, ids=[p.stem for p in SELECTED])
def test_notebook_runs_clean_in_jupyterlab_at_1280x720(lab, notebook, edition):
    path = Path(edition) / notebook.name
    stem = f"{edition}-{notebook.stem}"

    def shot(what: str = "") -> Path:
        return ARTIFACTS / (f"{stem}-{what}.png" if what else f"{stem}.png")

    page = lab.browser.new_page(viewport=VIEWPORT)
    try:
        # a workspace of its own, reset: only this notebook open, whatever the previous one left
        page.goto(f"http://127.0.0.1:{lab.port}/lab/workspaces/{stem}/tree/{path.as_posix()}"
                  f"?reset&token={lab.token}",
                  wait_until="domcontentloaded", timeout=60_000)
        page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
        wait_for_kernel(page, lab, shot)
        expected = code_cells_of(lab.root / path)
        run_all(page, lab, expected, shot)

        boxes = stderr_boxes(page, expected)
        news = page.locator(".jp-toast-container, .Toastify__toast")
        news_text = [t for t in news.all_inner_texts() if t.strip()]
        explorers = check_explorers(page, shot, stem)

        page.locator(".jp-Notebook .jp-Cell").first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        page.screenshot(path=str(shot()))
        figure = page.locator(".jp-Notebook .jp-OutputArea-output img").first  # else a table, a note
        if not figure.count():
            figure = page.locator(".jp-Notebook .jp-OutputArea-output.jp-RenderedHTMLCommon").first
        if not explorers and figure.count():
            figure.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(300)
            page.screenshot(path=str(shot("figure")))
        assert not boxes, f"{path}: stderr boxes after Run All:\n" + "\n".join(boxes)[:3000]
        assert not news_text, f"{path}: a pop-up covers the notebook: {news_text}"
    finally:
        page.close()
        lab.shutdown_kernels()
