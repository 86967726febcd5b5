"""The explorers in a real browser: JupyterLab + headless Chromium, driven by Playwright.

The test starts its own JupyterLab server on loopback (a random port and token, a temporary copy of
notebook 09 as its root), opens the notebook in Debian's Chromium through Playwright (no browser is
downloaded), runs every cell, moves the skew slider of the routing explorer with the keyboard and
checks that the figure the kernel sends back is a different one. Screenshots go to
``test-artifacts/browser/``. The server, its kernel and the browser are stopped in ``finally``.

It is skipped, saying why, only where Chromium or Playwright's Python package is missing
(``make test`` first runs ``tools/browser-deps.sh``, which installs Chromium with apt where it can).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "09_explorers.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
SERVER_START_S = 90
RUN_ALL_S = 180
REDRAW_S = 60

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


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


LAB_SETTINGS = {  # start the kernel without asking, render every cell (no windowing), no news pop-up
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        '{"autoStartDefaultKernel": true, "windowingMode": "none"}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false"}',
}


def start_lab(root_dir: Path, home: Path, port: int, token: str, log) -> subprocess.Popen:
    for name, text in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = dict(os.environ)
    env.update({
        "MOE_LAB_QUIET": "1", "TQDM_DISABLE": "1",
        # a private config/data/runtime/settings/workspace: nothing from the user's own JupyterLab
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root_dir}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
           "jupyterlab.NeverCheckForUpdate"]
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
    """Stop the server we started (it shuts its kernel down), then anything left in its session."""
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
        os.killpg(proc.pid, signal.SIGKILL)  # the kernel, if the server left it behind
    except (ProcessLookupError, PermissionError):
        pass


def cell_with(page, text: str):
    """The notebook's code cell whose source contains ``text``."""
    return page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=text)).first


def image_sources(cell) -> list[str]:
    return cell.locator(".jp-OutputArea img").evaluate_all("els => els.map(e => e.src)")


def test_routing_explorer_slider_redraws_in_jupyterlab(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium: install Debian's chromium (tools/browser-deps.sh, run by make test)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"the playwright Python package is missing ({err}); pip install -e '.[dev]'")
    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing"

    root = tmp_path / "nb"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.log")]:  # this run's pictures only
        old.unlink()
    port, token = free_port(), secrets.token_hex(16)
    log_path = tmp_path / "jupyter.log"
    with open(log_path, "w") as log:
        server = start_lab(root, tmp_path / "home", port, token, log)
    try:
        wait_for_server(server, port, token, log_path)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                run_and_move_slider(page, port, token, log_path)
            finally:
                browser.close()
    finally:
        stop(server)
        shutil.copy(log_path, ARTIFACTS / "jupyter.log")


def wait_for_kernel(page, idle, log_path, timeout_s=90):
    """Until the notebook's kernel is connected and idle (Lab shows "idle" with "No Kernel" too,
    before the kernel has started, so the kernel's name must be there as well, twice in a row)."""
    kernel_name = page.locator(".jp-Toolbar-kernelName")
    deadline = time.monotonic() + timeout_s
    ready_before = False
    while True:
        select = page.locator(".jp-Dialog button", has_text="Select")
        if select.count():  # a kernel chooser, should Lab ask: take the notebook's own kernel
            select.first.click()
        names = kernel_name.all_inner_texts()
        ready = idle.count() == 1 and any("Python" in n for n in names)
        if ready and ready_before:
            return
        ready_before = ready
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "kernel-timeout.png"))
            pytest.fail(f"the notebook's kernel was not ready within {timeout_s}s (kernel {names}):\n"
                        f"{log_path.read_text()[-3000:]}")
        time.sleep(1)


def run_and_move_slider(page, port, token, log_path):
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}",
              wait_until="domcontentloaded", timeout=60_000)
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    wait_for_kernel(page, idle, log_path)

    # Run > Run All Cells, as a learner would
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    code_cells = page.locator(".jp-Notebook .jp-CodeCell")
    num_cells = code_cells.count()
    deadline = time.monotonic() + RUN_ALL_S
    while True:
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
        done = sum(1 for p in prompts if p.strip().strip("[]:").isdigit())
        if done == num_cells and idle.count() == 1:
            break
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "run-all-timeout.png"), full_page=True)
            pytest.fail(f"Run All did not finish in {RUN_ALL_S}s: prompts {prompts}\n"
                        f"{log_path.read_text()[-3000:]}")
        time.sleep(1)
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    tracebacks = [t for t in stderr.all_inner_texts() if "Traceback" in t or "Error" in t]
    assert not tracebacks, "a cell raised:\n" + "\n".join(tracebacks)[:3000]

    cell = cell_with(page, "widgets.routing_explorer()")
    cell.scroll_into_view_if_needed()
    skew = cell.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text="skew")).first
    skew.wait_for(timeout=30_000)  # the live widget rendered (not only the static figure)
    readout = skew.locator(".widget-readout")
    assert readout.inner_text().strip() == "uniform"
    before = image_sources(cell)
    assert before, "the routing explorer shows no figure after Run All"
    cell.screenshot(path=str(ARTIFACTS / "routing-explorer-before.png"))

    handle = skew.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowRight")
    deadline = time.monotonic() + REDRAW_S
    while True:
        after = image_sources(cell)
        if after and after != before and idle.count() == 1:
            break
        if time.monotonic() > deadline:
            cell.screenshot(path=str(ARTIFACTS / "routing-explorer-timeout.png"))
            pytest.fail(f"the figure did not change within {REDRAW_S}s of moving the skew slider "
                        f"(readout {readout.inner_text()!r})")
        time.sleep(0.5)
    assert readout.inner_text().strip() == "zipf s=0.25"
    assert len(after) == 1, "the static figure should be replaced by the live one, not joined"
    assert after[0] not in before
    cell.screenshot(path=str(ARTIFACTS / "routing-explorer-after.png"))
    page.screenshot(path=str(ARTIFACTS / "lab-after.png"))
