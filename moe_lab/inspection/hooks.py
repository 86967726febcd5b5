"""Watch what a kernel does while Triton's interpreter runs it: hooks on the interpreter's builder.

The tracer (:mod:`moe_lab.inspection.tracer`) and the exercise checker watch every load, store, atomic
and histogram by replacing methods of the interpreter's builder for the duration of a launch
(:func:`hooked`). Those methods change their parameters between Triton releases, so a hook reads its
arguments through :class:`BuilderCall` by role, whatever the release calls them. Running kernels in the
interpreter at all (the lock, the shims) is :mod:`moe_lab.interp`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

from moe_lab import interp

LOCK = interp.LOCK


def handle(data, dtype=None):
    """An interpreter tensor handle over the numpy array ``data``
    (``dtype``: a Triton dtype, default int32)."""
    from triton.runtime import interpreter

    return interpreter.TensorHandle(data, interpreter.tl.int32 if dtype is None else dtype)


def builder():
    """The interpreter's builder (its ``grid_idx`` is the running program's id)."""
    from triton.runtime import interpreter

    return interpreter.interpreter_builder


# The builder's memory methods change their parameters between Triton releases
# (3.6: ``create_masked_load(ptrs, mask, other, cache_modifier, eviction_policy, is_volatile)``,
# 3.9: ``create_masked_load(ptrs, mask, other, cache_policy, is_volatile)``), so hooks take any
# arguments and find the ones they need by name, falling back to their position. The atomics are
# ``create_atomic_rmw(rmwOp, ptr, val, mask, sem, scope)`` and ``create_atomic_cas(ptr, cmp, val, sem,
# scope)`` in both releases: ``sem`` is the memory order, ``scope`` which threads it orders against
# (``MEM_SYNC_SCOPE.GPU``, ``.CTA`` or ``.SYSTEM``).
ROLES = {
    "create_masked_load": {"ptr": ("ptrs", 0), "mask": ("mask", 1)},
    "create_masked_store": {"ptr": ("ptrs", 0), "value": ("value", 1), "mask": ("mask", 2)},
    "create_atomic_rmw": {"op": ("rmwOp", 0), "ptr": ("ptr", 1), "value": ("val", 2), "mask": ("mask", 3),
                          "sem": ("sem", 4), "scope": ("scope", 5)},
    "create_atomic_cas": {"ptr": ("ptr", 0), "cmp": ("cmp", 1), "value": ("val", 2), "sem": ("sem", 3),
                          "scope": ("scope", 4)},
    "create_histogram": {"data": ("data", 0), "bins": ("bins", 1), "mask": ("mask", 2)},
}


def builder_parameters(method: str) -> list[str]:
    """Parameter names (without ``self``) of the builder's ``method`` in the installed Triton."""
    fn = getattr(type(builder()), method)
    names = list(inspect.signature(fn).parameters)
    return names[1:] if names and names[0] == "self" else names


class BuilderCall:
    """One call to a builder method, whatever that Triton release's parameters are.

    ``call["mask"]`` reads an argument by its role (see :data:`ROLES`), ``call["mask"] = h`` replaces
    it, and ``call.forward(fn)`` passes the (possibly changed) arguments on.
    """

    def __init__(self, method: str, args: tuple, kwargs: dict):
        self.method, self.args, self.kwargs = method, list(args), dict(kwargs)
        self._names = builder_parameters(method)

    def _where(self, role: str):
        name, position = ROLES[self.method][role]
        if name in self.kwargs:
            return "kw", name
        if name in self._names:
            position = self._names.index(name)
        if position < len(self.args):
            return "pos", position
        return "kw", name

    def __getitem__(self, role: str):
        how, key = self._where(role)
        return self.args[key] if how == "pos" else self.kwargs.get(key)

    def __setitem__(self, role: str, value):
        how, key = self._where(role)
        if how == "pos":
            self.args[key] = value
        else:
            self.kwargs[key] = value

    def forward(self, fn):
        return fn(*self.args, **self.kwargs)


def original(method: str):
    """The builder's own ``method`` (the class's), bound to the builder: what a hook forwards to."""
    b = builder()
    return functools.partial(getattr(type(b), method), b)


@contextlib.contextmanager
def hooked(**hooks):
    """Replace builder methods by ``hooks`` (``create_atomic_rmw=fn, ...``) for the block's duration.

    Holds :data:`LOCK` throughout, so the hooks see this thread's kernels only; whatever was installed
    before (another hook further out) is put back afterwards.
    """
    with LOCK:
        interp.install()
        b = builder()
        saved = {n: b.__dict__[n] for n in hooks if n in b.__dict__}
        for name, fn in hooks.items():
            setattr(b, name, fn)
        try:
            yield b
        finally:
            for name in hooks:
                if name in saved:
                    setattr(b, name, saved[name])
                else:
                    b.__dict__.pop(name, None)


__all__ = ["LOCK", "handle", "builder", "ROLES", "builder_parameters", "BuilderCall", "original", "hooked"]
