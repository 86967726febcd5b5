"""A compatibility shim for Triton 3.6's interpreter with NumPy 2.4 (applied by moe_lab.backend).

Triton's interpreter holds a scalar kernel argument as a one-element 1-D numpy array. Triton 3.6 turns
it into an index with ``int(array)`` (``for k in range(topk)``, ``range(pid, num_tiles, step)``),
which NumPy 2.4 refuses: "only 0-dimensional arrays can be converted to Python scalars". Triton 3.9
squeezes the array first. The shim gives the interpreter's tensors an ``__index__`` that uses
``.item()``, which accepts any one-element array, on both releases; where Triton's internals look
different it leaves them alone.
"""

from __future__ import annotations

import contextlib

import numpy as np


def _scalar_index(self) -> int:
    return int(np.asarray(self.handle.data).item())


def _with_scalar_index(patch_lang_tensor):
    def patched(tensor, scope, *rest, **kw):
        patch_lang_tensor(tensor, scope, *rest, **kw)
        scope.set_attr(tensor, "__index__", _scalar_index)

    patched.moe_lab_scalar_index = True
    return patched


@contextlib.contextmanager
def interpreter_scalar_index():
    """Let scalar kernel arguments act as Python ints (``range(topk)``) in Triton 3.6's interpreter.

    The interpreter holds a scalar argument as a one-element 1-D numpy array; Triton 3.6 turns it
    into an index with ``int(array)``, which NumPy 2.4 refuses ("only 0-dimensional arrays can be
    converted to Python scalars"), so every kernel with ``for k in range(topk)`` fails there
    (Triton 3.9 squeezes the array first). Inside this block ``__index__`` uses ``.item()``, which
    accepts any one-element array, on both releases. See also :func:`install_interpreter_scalar_index`.
    """
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "moe_lab_scalar_index", False):
        yield  # another Triton layout (left alone), or already installed for good
        return
    interpreter._patch_lang_tensor = _with_scalar_index(original)
    try:
        yield
    finally:
        interpreter._patch_lang_tensor = original


def install_interpreter_scalar_index() -> None:
    """:func:`interpreter_scalar_index` for the rest of the process (idempotent), so the library's
    own interpreted kernels (``naive``'s ``range(topk)``) run under Triton 3.6 with NumPy 2.4 too."""
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is not None and not getattr(original, "moe_lab_scalar_index", False):
        interpreter._patch_lang_tensor = _with_scalar_index(original)


