"""Pick where the Triton kernels run: a CUDA GPU, or Triton's interpreter on the CPU.

Triton decides at ``@triton.jit`` time whether a kernel is compiled or interpreted, from the
environment variable ``TRITON_INTERPRET``. So the choice must be made *before* any kernel module
is imported. ``import moe_lab`` does that for you:

* ``TRITON_INTERPRET`` already set by you -> respected as it is;
* else a CUDA GPU is visible -> kernels compile for the GPU;
* else -> ``TRITON_INTERPRET=1`` is set and the kernels run in the interpreter, on CPU tensors.

Where it is said: in a notebook (IPython) the import is silent, and a notebook that wants to show
the choice displays :func:`describe` itself (notebook 00 does, as a small note); in a plain Python
process the choice is said once, on stderr, unless ``MOE_LAB_QUIET=1``. So no notebook gets an
stderr box, and nbval passes with or without ``MOE_LAB_QUIET``.
"""

from __future__ import annotations

import os
import sys

import torch

_TRUE = {"1", "true", "yes", "on"}


def _decide() -> str:
    env = os.environ.get("TRITON_INTERPRET")
    if env is not None:
        return "interpreter" if env.strip().lower() in _TRUE else "cuda"
    if torch.cuda.is_available():
        return "cuda"
    os.environ["TRITON_INTERPRET"] = "1"
    return "interpreter"


BACKEND: str = _decide()
"""``"cuda"`` (compiled kernels on the GPU) or ``"interpreter"`` (Triton's CPU interpreter)."""

INTERPRETER: bool = BACKEND == "interpreter"

if INTERPRETER:  # one launch at a time, scalar arguments as indices (see moe_lab.interp)
    from moe_lab import interp

    interp.install()


def device() -> torch.device:
    """The device that Triton stages expect their tensors on."""
    return torch.device("cpu") if INTERPRETER else torch.device("cuda")


def describe() -> str:
    """One sentence that says where kernels run and what that means for timings."""
    if INTERPRETER:
        return ("moe_lab: Triton kernels run in the interpreter on CPU tensors (TRITON_INTERPRET=1). "
                "Results are exact; speed is not a GPU's, so timings come from recorded GPU data.")
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CUDA (no device visible)"
    return f"moe_lab: Triton kernels compile for the GPU ({name})."


def has_gpu() -> bool:
    """True when kernels are compiled for a real GPU, the only place where timing means anything."""
    return BACKEND == "cuda" and torch.cuda.is_available()


def _in_ipython() -> bool:
    """True inside IPython (a notebook's kernel, an IPython shell); checked without importing it."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def _announce() -> None:
    """Say the choice once on stderr, outside IPython and unless ``MOE_LAB_QUIET`` is set."""
    if _in_ipython() or os.environ.get("MOE_LAB_QUIET", "").strip().lower() in _TRUE:
        return
    print(describe(), file=sys.stderr)


_announce()
