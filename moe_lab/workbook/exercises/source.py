"""What can be told from the learner's object before it runs: stub, kind, signature, helpers, host help."""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types

from moe_lab import interp
from moe_lab.workbook.exercises.catalogue import MARKER, Exercise

# Builtins Triton's front end accepts inside a kernel.
_KERNEL_BUILTINS = {"range", "min", "max", "print", "int", "float", "bool", "len", "isinstance", "abs",
                    "tuple", "list", "enumerate", "zip", "getattr", "hasattr", "type", "slice"}


def source(obj) -> str | None:
    """The source of what runs: a compiled kernel's ``src`` (read-only there), else the text of the
    Python function the interpreter runs, never an ``src`` attribute someone set on it."""
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(obj, InterpretedFunction):
        src = getattr(obj, "src", None)  # JITFunction: the text Triton compiles
        if isinstance(src, str):
            return src
    fn = getattr(obj, "fn", obj)  # InterpretedFunction wraps the Python function in .fn
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def function_node(src: str):
    try:
        tree = ast.parse(textwrap.dedent(src))
    except SyntaxError:
        return None
    return next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)


def is_stub(obj) -> bool:
    """Still the student stub: the source has the marker and the body nothing but the stub.

    A learner who writes the body but leaves the ``# YOUR CODE HERE`` comment in place is not stuck
    at "not done yet": only docstrings, ``pass``, ``...`` and ``raise NotImplementedError`` count as
    stub statements.
    """
    src = source(obj)
    if src is None or MARKER not in src:
        return False
    fn = function_node(src)
    if fn is None:
        return True
    for stmt in fn.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or `...`
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt):
            continue
        return False
    return True


def not_a_kernel(obj) -> str:
    """Why ``obj`` is not a bare ``@triton.jit`` kernel ("" when it is)."""
    if interp.is_kernel(obj):
        return ""
    kind = type(obj).__name__
    if kind in ("Autotuner", "Heuristics") or hasattr(obj, "configs") and hasattr(obj, "fn"):
        return (f"expected the bare @triton.jit kernel, got a {kind} around it: the checker chooses the "
                f"launch, so remove @triton.autotune / @triton.heuristics and check again")
    if callable(obj):
        return ("expected a Triton kernel, got a plain Python function: put @triton.jit on the line "
                "above its def, run the cell, then check again")
    return f"expected a @triton.jit kernel, got {type(obj).__name__}"


def parameters(kernel) -> list[tuple[str, bool]]:
    """``(name, is constexpr)`` of each parameter of a kernel, compiled or interpreted."""
    fn = getattr(kernel, "fn", kernel)
    out = []
    for p in inspect.signature(fn).parameters.values():
        ann = p.annotation
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
        out.append((p.name, "constexpr" in str(text)))
    return out


def signature_problem(ex: Exercise, kernel) -> str:
    """How the kernel's parameters differ from the exercise's ("" when they match)."""
    try:
        got = parameters(kernel)
    except (TypeError, ValueError):
        return "its parameters could not be read"
    want = list(ex.params)
    if got == want:
        return ""
    got_names, want_names = [n for n, _ in got], [n for n, _ in want]
    missing = [n for n in want_names if n not in got_names]
    unknown = [n for n in got_names if n not in want_names]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if unknown:
        parts.append(f"unknown {', '.join(unknown)}")
    if not parts and got_names != want_names:
        parts.append(f"order {', '.join(got_names)} (expected {', '.join(want_names)})")
    if not parts:
        flips = [n for (n, c), (_, w) in zip(got, want) if c != w]
        for n in flips:
            should = dict(want)[n]
            parts.append(f"{n} {'needs' if should else 'must not have'} `: tl.constexpr`")
    return "; ".join(parts)


def scope_of(fn) -> dict:
    """The names a function's body sees from outside: its globals and its closure."""
    scope = dict(getattr(fn, "__globals__", {}))
    closure = getattr(fn, "__closure__", None) or ()
    free = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    for name, cell in zip(free, closure):
        try:
            scope[name] = cell.cell_contents
        except ValueError:
            pass
    return scope


def local_names(node) -> set[str]:
    """Names a function binds itself: its parameters and every name it assigns."""
    names = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
    return names | {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


_MISSING = object()


def _resolve(expr, scope: dict, local: set[str]):
    """What a called expression names: a ``Name`` or a chain of attributes of modules, looked up without
    running anything but a module's attribute lookup. ``None`` for a local (a Triton value or a loop
    variable: Triton's own to judge); :data:`_MISSING` for anything else (a call of a call, a subscript)."""
    chain = []
    while isinstance(expr, ast.Attribute):
        chain.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return _MISSING
    if expr.id in local:
        return None
    target = scope.get(expr.id, getattr(builtins, expr.id, _MISSING))
    for attr in reversed(chain):
        target = getattr(target, "value", target) if type(target).__name__ == "constexpr" else target
        if not isinstance(target, (types.ModuleType, type)):
            return None  # a method of a value (x.to(...)): Triton's own to judge
        target = getattr(target, attr, _MISSING)
    if type(target).__name__ == "constexpr":  # tl.constexpr(os._exit) is still os._exit
        target = getattr(target, "value", target)
    return target


def _dotted(expr) -> str:
    return ast.unparse(expr) if hasattr(ast, "unparse") else getattr(expr, "id", "?")


def python_helpers(kernel, _seen=None) -> list[str]:
    """Names of plain Python functions the kernel (or a @triton.jit function it calls) calls.

    A GPU cannot run them: Triton compiles only ``@triton.jit`` functions and its builtins, and calls any
    other function while it compiles, in the notebook's process (``os._exit``, ``time.sleep``). Found
    from the source: every called name, and every chain of module attributes (``os._exit``), is looked
    up in the kernel's globals (and closure); a call the checker cannot follow (``getattr(m, n)()``) is
    named too.
    """
    seen = _seen if _seen is not None else set()
    fn = getattr(kernel, "fn", kernel)
    if fn in seen:
        return []
    seen.add(fn)
    src = source(kernel)
    node = function_node(src) if src else None
    if node is None:
        return []
    scope, local = scope_of(fn), local_names(node)
    found = []
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        target = _resolve(call.func, scope, local)
        name = _dotted(call.func)
        if target is None:
            continue  # a local name or a method of a value: Triton reports it if it is wrong
        if target is _MISSING:
            if not isinstance(call.func, (ast.Name, ast.Attribute)):
                found.append(f"{name} (a call the checker cannot follow)")
            continue  # an unknown name: Triton reports it
        if interp.is_kernel(target):
            found += python_helpers(target, seen)
        elif isinstance(call.func, ast.Name) and target is getattr(builtins, call.func.id, None):
            if isinstance(target, type) and issubclass(target, BaseException):
                continue  # `raise X(...)`: runs (and is reported) like any other error
            if call.func.id not in _KERNEL_BUILTINS:
                found.append(name)
        elif isinstance(target, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
            module = getattr(target, "__module__", "") or ""
            if not module.startswith("triton"):
                found.append(name)
    return sorted(set(found))


def calls_itself(kernel) -> list[str]:
    """The names along a cycle of @triton.jit calls that starts at ``kernel`` (``[]`` when there is none):
    ``["k", "k"]`` for a kernel that calls itself, ``["k", "helper", "k"]`` through a helper."""

    def walk(k, path):
        fn = getattr(k, "fn", k)
        name = getattr(fn, "__name__", "?")
        if any(f is fn for f, _ in path):
            return [n for _, n in path] + [name]
        node = function_node(source(k) or "")
        if node is None:
            return []
        scope, local = scope_of(fn), local_names(node)
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            target = _resolve(call.func, scope, local)
            if target is not None and target is not _MISSING and interp.is_kernel(target):
                cycle = walk(target, path + [(fn, name)])
                if cycle:
                    return cycle
        return []

    return walk(kernel, [])


def library_calls(fn) -> list[str]:
    """What of moe_lab a plain function (``block_size``) uses: imports from it, and names or attribute
    chains that resolve to its objects ("" when none)."""
    src = source(fn)
    node = function_node(src) if src else None
    if node is None:
        return []
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.ImportFrom) and (sub.module or "").split(".")[0] == "moe_lab":
            found.append(f"from {sub.module} import {', '.join(a.name for a in sub.names)}")
        elif isinstance(sub, ast.Import):
            found += [f"import {a.name}" for a in sub.names if a.name.split(".")[0] == "moe_lab"]
    scope, local = scope_of(fn), local_names(node)
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(getattr(sub, "ctx", None), ast.Load):
            target = _resolve(sub, scope, local)
            module = getattr(target, "__module__", None) or getattr(target, "__name__", "")
            if target not in (None, _MISSING) and str(module).split(".")[0] == "moe_lab":
                found.append(_dotted(sub))
    return sorted(set(found))


def host_help(kernel) -> str:
    """Host-side code that would run around the launch ("" when there is none)."""
    hooks = getattr(kernel, "pre_run_hooks", None)
    if hooks:
        return f"{len(hooks)} pre-run hook(s) added with add_pre_run_hook"
    for attr in ("launch_enter_hook", "launch_exit_hook"):
        if getattr(kernel, attr, None) is not None and attr in getattr(kernel, "__dict__", {}):
            return f"a {attr} set on the kernel"
    return ""


__all__ = ["source", "function_node", "scope_of", "local_names", "is_stub", "not_a_kernel", "parameters",
           "signature_problem", "python_helpers", "calls_itself", "library_calls", "host_help"]
