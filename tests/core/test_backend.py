"""``import moe_lab`` picks the backend: the interpreter path is really taken on a machine without a GPU.

The subprocess tests start a fresh Python with ``TRITON_INTERPRET`` removed and CUDA hidden, as a
learner's laptop would be, and look at what the import did: the environment variable, the notice
on stderr (once, not with ``MOE_LAB_QUIET=1``, and never inside IPython, where it would be an stderr
box in every notebook) and the type of the kernel objects, which Triton
decides at ``@triton.jit`` time. A user's own ``TRITON_INTERPRET`` must be left alone.
They are skipped on a GPU machine, where the in-process checks below cover the CUDA side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

import moe_lab
from moe_lab import backend

REPO = Path(__file__).resolve().parents[2]
KERNELS = {  # stage module -> its @triton.jit kernel
    "row_loop": "row_loop_kernel", "naive": "naive_kernel", "tl_full": "tl_full_kernel",
    "scalar_atomic": "scalar_atomic_kernel", "relaxed": "relaxed_kernel",
    "block_histogram": "block_histogram_kernel",
}

PROBE = r"""
import importlib, json, os, sys
if os.environ.get("MOE_LAB_PROBE_IPYTHON"):  # as in a notebook's kernel: an IPython shell exists
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.instance()
import moe_lab
import moe_lab.backend, moe_lab.stages.best  # imported again: the notice must not repeat
from moe_lab import backend
import torch
kernels = {m: type(getattr(importlib.import_module("moe_lab.stages." + m), k)).__module__ + "."
              + type(getattr(importlib.import_module("moe_lab.stages." + m), k)).__qualname__
           for m, k in json.loads(sys.argv[1]).items()}
ids = torch.tensor([[0, 5, -1], [3, 9, 2]], dtype=torch.int32)
try:
    adjusted, counts = moe_lab.recombine(ids, 2, 4, stage="tl_full")
    run = {"adjusted": adjusted.tolist(), "counts": counts.tolist()}
except Exception as err:
    run = {"error": type(err).__name__ + ": " + str(err)}
print(json.dumps({"env": os.environ.get("TRITON_INTERPRET"), "backend": backend.BACKEND,
                  "interpreter": backend.INTERPRETER, "device": str(backend.device()),
                  "has_gpu": backend.has_gpu(), "describe": backend.describe(),
                  "cuda_available": torch.cuda.is_available(), "kernels": kernels, "run": run}))
"""

no_gpu_only = pytest.mark.skipif(torch.cuda.is_available(),
                                 reason="checks the no-GPU start-up; this machine has a CUDA GPU")


def start_probe(**env_changes) -> subprocess.Popen:
    """Start PROBE in a fresh interpreter with CUDA hidden; a value of ``None`` removes a variable."""
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    env.pop("MOE_LAB_QUIET", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.Popen([sys.executable, "-c", PROBE, json.dumps(KERNELS)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SCENARIOS = {"default": {}, "quiet": {"MOE_LAB_QUIET": "1"}, "user_says_0": {"TRITON_INTERPRET": "0"},
             "ipython": {"MOE_LAB_PROBE_IPYTHON": "1"}}


@pytest.fixture(scope="module")
def probes():
    """The three start-ups, run side by side (each is a fresh import of torch and triton)."""
    running = {name: start_probe(**env) for name, env in SCENARIOS.items()}
    results = {}
    for name, proc in running.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"probe {name!r} failed:\n{stderr}"
        results[name] = json.loads(stdout.strip().splitlines()[-1]), stderr
    return results


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("moe_lab:")]


INTERPRETED = f"{InterpretedFunction.__module__}.{InterpretedFunction.__qualname__}"
COMPILED = f"{JITFunction.__module__}.{JITFunction.__qualname__}"


@no_gpu_only
def test_no_gpu_selects_the_interpreter(probes):
    got, stderr = probes["default"]
    assert got["cuda_available"] is False
    assert got["env"] == "1", "import moe_lab must set TRITON_INTERPRET=1 when there is no GPU"
    assert got["backend"] == "interpreter" and got["interpreter"] is True
    assert got["device"] == "cpu" and got["has_gpu"] is False
    assert INTERPRETED == "triton.runtime.interpreter.InterpretedFunction"
    assert got["kernels"] == {m: INTERPRETED for m in KERNELS}, "kernels were defined before the choice"
    assert got["run"] == {"adjusted": [[-1, 3, -1], [1, -1, 0]], "counts": [1, 1, 0, 1]}
    lines = notices(stderr)
    assert lines == [got["describe"]], f"expected the notice exactly once on stderr, got {lines}"
    assert "interpreter" in lines[0] and "TRITON_INTERPRET=1" in lines[0]


@no_gpu_only
def test_quiet_import_prints_nothing(probes):
    got, stderr = probes["quiet"]
    assert got["interpreter"] is True and got["env"] == "1"
    assert notices(stderr) == [], stderr


@no_gpu_only
def test_inside_ipython_the_import_is_silent(probes):
    got, stderr = probes["ipython"]
    assert got["interpreter"] is True and got["env"] == "1"
    assert stderr.strip() == "", f"a notebook would show this as an stderr box:\n{stderr}"
    assert "interpreter" in got["describe"], "describe() still says where kernels run"


def test_describe_renders_as_a_small_note():
    from moe_lab.workbook.show import show_note

    note = show_note(backend.describe())
    assert repr(note) == backend.describe()
    assert "border-left" in note._repr_html_() and "stderr" not in note._repr_html_()


@no_gpu_only
def test_user_choice_of_triton_interpret_is_kept(probes):
    got, stderr = probes["user_says_0"]
    assert got["env"] == "0", "the user's TRITON_INTERPRET must not be overwritten"
    assert got["backend"] == "cuda" and got["interpreter"] is False and got["has_gpu"] is False
    assert got["kernels"] == {m: COMPILED for m in KERNELS}
    # With no GPU and the interpreter refused, a stage says clearly where its tensors must live.
    assert "error" in got["run"] and "run on the GPU" in got["run"]["error"], got["run"]
    assert len(notices(stderr)) == 1


def test_this_process_is_consistent():
    assert backend.BACKEND in ("cuda", "interpreter")
    assert backend.INTERPRETER == (backend.BACKEND == "interpreter")
    assert backend.device().type == ("cpu" if backend.INTERPRETER else "cuda")
    assert backend.has_gpu() == (backend.BACKEND == "cuda" and torch.cuda.is_available())
    assert "\n" not in backend.describe()
    if backend.INTERPRETER:
        assert os.environ.get("TRITON_INTERPRET", "").strip().lower() in {"1", "true", "yes", "on"}
        assert "interpreter" in backend.describe()
    kind = InterpretedFunction if backend.INTERPRETER else JITFunction
    for module, name in KERNELS.items():
        kernel = getattr(moe_lab.stage(module).load(), name)
        assert type(kernel) is kind, f"{module}.{name} is {type(kernel).__name__}, expected {kind.__name__}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the interpreter path (no GPU)")
def test_triton_imported_before_moe_lab_still_works():
    """A learner who runs `import triton` first must still get correct interpreter results."""
    code = ("import triton, torch, moe_lab\n"
            "ids = torch.randint(-1, 40, (300, 6), dtype=torch.int32,\n"
            "                    generator=torch.Generator().manual_seed(3))\n"
            "ref = moe_lab.recombine(ids, 0, 32, 'torch')\n"
            "for v in ('tl_full', 'block_histogram', 'decode', 'one_launch', 'handoff', 'best'):\n"
            "    out = moe_lab.recombine(ids, 0, 32, v)\n"
            "    assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1]), v\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(CUDA_VISIBLE_DEVICES="", MOE_LAB_QUIET="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
