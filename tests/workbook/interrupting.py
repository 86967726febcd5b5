"""Ctrl-C during a check, as Jupyter's Stop button sends it: SIGINT to the process that runs ``check``.

The check runs in a Python process of its own with SIGINT handled as in a notebook kernel (a process
inherits an ignored SIGINT from the one that starts it, and the test process's signal state is pytest's
and its plugins'); the test presses Ctrl-C once the check is under way and reads what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a notebook kernel has it, whatever
    sys.path.insert(0, {here!r})                               # the process that started this one had
    import importlib
    from moe_lab.workbook.exercises import check, sandbox
    sandbox.BUDGET_S = 60.0
    kernel = getattr(importlib.import_module({module!r}), {name!r})
    print("checking", flush=True)
    try:
        result = check("masked_block", kernel)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    else:
        print("returned:", result.status, result.text, flush=True)
""")


def _in_session(sid: int) -> list[int]:
    """Processes of session ``sid`` (Linux /proc): the check's child stays in its parent's session."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(entry))
    return out


def press_ctrl_c_during(module: str, name: str, after_s: float = 2.0) -> tuple[str, list[int]]:
    """Check kernel ``module.name`` (an endless one) in a new process, SIGINT to it ``after_s`` seconds
    into the check; ``(what it printed, the processes of its session left a second after it ended)``."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(here=str(HERE), module=module, name=name)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "MOE_LAB_QUIET": "1"})
    try:
        assert proc.stdout.readline().strip().endswith("checking")
        time.sleep(after_s)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(1.0)
    left = _in_session(proc.pid)
    for pid in left:  # never leave a stray child behind a failed test
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return out, left
