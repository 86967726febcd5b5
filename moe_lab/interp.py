"""Everything moe-lab does inside Triton's interpreter, in one place.

To run kernels, the library leans on the interpreter's internals for three things, all defined here and
nowhere else (so dropping support for a Triton release means editing this file only):

* **one launch at a time.** The interpreter patches ``triton.language`` for the duration of a launch,
  so two threads interpreting kernels at once break each other ("Did you forget to add @triton.jit?").
  :func:`install` wraps ``InterpretedFunction.run`` in the process-wide :data:`LOCK`;
* **helpers interpreted too.** On a GPU machine kernels are compiled ``JITFunction`` objects, and so are
  ``@triton.jit`` helpers and Triton's own ``tl.sum``/``tl.cumsum``; calling one from a kernel that runs in
  the interpreter (the tracer, the checker) raises "Cannot call @triton.jit'd outside of the scope of a
  kernel". During an interpreted launch such calls run interpreted as well;
* **scalar arguments as indices.** Triton 3.6 turns a scalar kernel argument (a one-element 1-D numpy
  array) into an index with ``int(array)`` (``for k in range(topk)``), which NumPy 2.4 refuses; the
  shim gives the interpreter's tensors an ``__index__`` that uses ``.item()`` (Triton 3.9 squeezes the
  array itself);

Watching what a kernel does while it is interpreted (builder hooks, for the tracer and the exercise
checker) is inspection, not running: :mod:`moe_lab.inspection.hooks`.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

LOCK = threading.RLock()
"""Held while any kernel runs in the interpreter, and while builder hooks are installed."""


def _scalar_index(self) -> int:
    return int(np.asarray(self.handle.data).item())


def _with_scalar_index(patch_lang_tensor):
    def patched(tensor, scope, *rest, **kw):
        patch_lang_tensor(tensor, scope, *rest, **kw)
        scope.set_attr(tensor, "__index__", _scalar_index)

    patched.moe_lab_scalar_index = True
    return patched


_HELPERS: dict = {}  # compiled helper's function -> its interpreted twin


def _kernels_interpreted() -> bool:
    """True when ``@triton.jit`` makes interpreted functions (TRITON_INTERPRET was on at import)."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(getattr(tl, "cdiv", None), InterpretedFunction)


@contextlib.contextmanager
def _helpers_interpreted():
    """Calls of compiled ``@triton.jit`` functions run interpreted while the block runs (under LOCK)."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    original = JITFunction.__dict__.get("__call__")

    def call(self, *args, **kwargs):
        twin = _HELPERS.get(self.fn)
        if twin is None:
            twin = _HELPERS.setdefault(self.fn, InterpretedFunction(self.fn))
        return twin(*args, **kwargs)  # a device-function call, as in interpreter mode

    JITFunction.__call__ = call
    try:
        with _language_restored():
            yield
    finally:
        if original is None:
            del JITFunction.__call__
        else:
            JITFunction.__call__ = original


@contextlib.contextmanager
def _language_restored():
    """Put ``triton.language`` back as it was after the block.

    An interpreted helper call patches the builtins of the modules *its* code sees (``tl.core`` for
    ``tl.sum``) and, on some releases (3.6), never unpatches them; a later compile on a GPU then
    meets interpreter builtins ("'ir.value' object has no attribute 'dtype'").
    """
    import triton.language as tl

    owners = []
    for obj in (tl, getattr(tl, "core", None), getattr(tl, "math", None), getattr(tl, "standard", None),
                getattr(tl, "tensor", None)):
        if obj is not None and all(obj is not seen for seen in owners):
            owners.append(obj)
    saved = [(obj, dict(vars(obj))) for obj in owners]
    try:
        yield
    finally:
        for obj, before in saved:  # names the interpreter added stay: its rewritten code may use them
            now = vars(obj)
            for name, value in before.items():
                if now.get(name) is not value:
                    setattr(obj, name, value)


def _serialised(run):
    @functools.wraps(run)
    def locked(self, *args, **kwargs):
        with LOCK:  # the interpreter patches triton.language during a launch: one launch at a time
            if _kernels_interpreted():  # every @triton.jit function is interpreted already
                return run(self, *args, **kwargs)
            with _helpers_interpreted():  # a GPU machine: compiled helpers, and compiles after this
                return run(self, *args, **kwargs)

    locked.moe_lab_serialised = True
    return locked


def install() -> None:
    """Apply the scalar-index shim and the one-launch-at-a-time lock (idempotent).

    ``moe_lab.backend`` calls it when kernels run in the interpreter; :func:`interpreted` calls it
    for kernels interpreted on a GPU machine (the tracer, the checker). Where a Triton release's
    internals look different, the shim leaves them alone.
    """
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is not None and not getattr(original, "moe_lab_scalar_index", False):
        interpreter._patch_lang_tensor = _with_scalar_index(original)
    cls = interpreter.InterpretedFunction
    if not getattr(cls.run, "moe_lab_serialised", False):
        cls.run = _serialised(cls.run)


def interpreted(kernel):
    """``kernel`` as the interpreter runs it, whether it was compiled for a GPU or not."""
    from triton.runtime.interpreter import InterpretedFunction

    install()
    return kernel if isinstance(kernel, InterpretedFunction) else InterpretedFunction(kernel.fn)


def is_kernel(obj) -> bool:
    """True for a ``@triton.jit`` kernel, compiled or interpreted."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    # by its type alone: isinstance would read obj.__class__, which the object itself may define
    return issubclass(type(obj), (JITFunction, InterpretedFunction))


__all__ = ["LOCK", "install", "interpreted", "is_kernel"]
