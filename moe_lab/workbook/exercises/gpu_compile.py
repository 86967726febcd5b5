"""Compiling the learner's kernel for a GPU on a machine without one: what a CPU PASS promises.

The interpreter runs a kernel as Python, so it accepts what Triton's GPU compiler refuses: ``break``,
``continue`` or ``return`` inside a loop, a call of a plain Python function however it is reached (an
attribute such as ``LOG.debug``, a local alias ``pause = time.sleep``, a ``tl.constexpr`` that holds
one), a global that is not a ``tl.constexpr``. So once the interpreter pass has passed, :func:`check`
compiles the kernel for sm_90 (no GPU needed) with the exercise's signature and one representative
set of constexprs (:func:`launch_of`), and reports Triton's first meaningful line as the learner's
mistake. Where there is a GPU, the GPU pass compiles the kernel itself and this step is skipped.

How, so that nothing of the learner's code runs (Triton calls a plain function it meets at compile time):
the compile happens in a subprocess (``python -I``, ``TRITON_INTERPRET=0``,
:mod:`.compile_worker`) that confines itself (:mod:`.confine`) and gets the kernel's source and that
of every ``@triton.jit`` function it reaches, never an object. Each global those functions name is
described (:func:`_spec`): Triton's modules and objects by name, plain values by value, anything else
by a stand-in that Triton refuses as it would the real object (``Unsupported function referenced``)
and that runs nothing when called. Results are kept per job (the sources, the descriptions, the
launch), so checking the same kernel again costs nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import types

from moe_lab.workbook.exercises.catalogue import Exercise
from moe_lab.workbook.exercises.diagnose import message_line
from moe_lab.workbook.exercises.report import say, say_level
from moe_lab.workbook.exercises.source import function_node, local_names, scope_of, source

ARCH = 90
"""The GPU the check compiles for: sm_90 (H100, H200)."""
BUDGET_S = 50.0
"""Seconds the compile subprocess may take."""
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compile_worker.py")
_PLAIN = (int, float, bool, str, type(None))
_CACHE: dict[str, dict] = {}


class Unreadable(Exception):
    """The source of the kernel, or of a @triton.jit function it calls, cannot be read."""


def launch_of(ex: Exercise) -> tuple[list[list[str]], dict, int]:
    """``(signature, constexprs, num_warps)`` the check compiles ``ex``'s kernel with: int32 pointers
    and scalars, and one of the launches the interpreter pass ran."""
    bins = any(name == "NUM_BINS" for name, _ in ex.params)
    values = {"TOKENS_PER_PROGRAM": 4, "BLOCK": 64 if bins else 128, "NUM_BINS": 32}
    signature = [[name, "constexpr" if constexpr else "*i32" if name.endswith("_ptr") else "i32"]
                 for name, constexpr in ex.params]
    return signature, {name: values[name] for name, kind in signature if kind == "constexpr"}, 4


def _def_source(kernel) -> tuple[str, ast.FunctionDef]:
    """The function's source from its ``def`` on (decorators dropped), and its AST node."""
    text = source(kernel)
    name = getattr(getattr(kernel, "fn", kernel), "__name__", "kernel")
    if text is None:
        raise Unreadable(name)
    text = textwrap.dedent(text)
    found = re.search(rf"^def\s+{re.escape(name)}\s*\(", text, re.MULTILINE)
    text = text[found.start():] if found else text
    node = function_node(text)
    if node is None:
        raise Unreadable(name)
    return text, node


def _kernel_function(value):
    """The Python function of a ``@triton.jit`` object of Triton's own classes (not a subclass, whose
    attributes could be the learner's properties), else None. Nothing here runs the learner's code."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    if type(value) not in (JITFunction, InterpretedFunction):
        return None
    fn = vars(value).get("fn")
    return fn if type(fn) is types.FunctionType else None


def _triton_object(value) -> dict | None:
    """``{"import": [module, qualname]}`` for a function, class or jitted function of Triton's own."""
    fn = _kernel_function(value) or value
    if type(fn) not in (types.FunctionType, types.BuiltinFunctionType, type):  # exact types: their
        return None  # attributes below are plain data, no property of the learner's runs here
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str) and module.split(".")[0] == "triton"):
        return None
    target = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return {"import": [module, qualname]} if target is value else None


def _spec(value, name: str, attrs_used, add) -> dict:
    """How the compile subprocess rebuilds the global ``name`` (see :mod:`.compile_worker`)."""
    import triton.language as tl

    kind = type(value)
    if kind is types.ModuleType:
        module = vars(value).get("__name__")
        if isinstance(module, str) and module.split(".")[0] == "triton" and sys.modules.get(module) is value:
            return {"module": module}
        attrs = {}
        for attr in sorted(attrs_used):
            held = vars(value).get(attr, _spec)  # what the module holds itself: no module __getattr__ runs
            if held is not _spec and type(held) is not types.ModuleType:
                described = _spec(held, f"{name}.{attr}", (), add)
                if "stand_in" not in described:
                    attrs[attr] = described
        return {"stand_in_module": name, "attrs": attrs}
    imported = _triton_object(value)
    if imported:
        return imported
    if _kernel_function(value) is not None:
        return {"jit": add(value)}
    if kind in _PLAIN:
        return {"value": value}
    if kind is tuple and all(type(v) in _PLAIN for v in value):
        return {"tuple": list(value)}
    if kind is tl.constexpr:
        inner = value.value
        if type(inner) in _PLAIN:
            return {"constexpr": inner}
        if type(inner) is tl.dtype and getattr(tl, inner.name, None) is inner:
            return {"constexpr_dtype": inner.name}
        return {"stand_in": name, "callable": callable(inner), "constexpr_of": True}
    if kind is tl.dtype and getattr(tl, value.name, None) is value:
        return {"dtype": value.name}
    return {"stand_in": name, "callable": callable(value)}


def job(ex: Exercise, kernel) -> dict:
    """What the compile subprocess gets: the sources, the globals described, the launch."""
    functions: list = []
    index: dict[int, int] = {}

    def add(k) -> int:
        fn = _kernel_function(k) or k
        if id(fn) in index:
            return index[id(fn)]
        index[id(fn)] = len(functions)
        functions.append(None)
        text, node = _def_source(k)
        scope, local = scope_of(fn), local_names(node)
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        attrs: dict[str, set] = {}
        for n in ast.walk(node):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                attrs.setdefault(n.value.id, set()).add(n.attr)
        described = {name: _spec(scope[name], name, attrs.get(name, ()), add)
                     for name in sorted(used - local) if name in scope}
        functions[index[id(fn)]] = {"name": node.name, "source": text, "globals": described}
        return index[id(fn)]

    add(kernel)
    signature, constexprs, num_warps = launch_of(ex)
    return {"functions": functions, "signature": signature, "constexprs": constexprs, "arch": ARCH,
            "num_warps": num_warps}


def _run_worker(work: dict) -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "0", "CUDA_VISIBLE_DEVICES": "",
           "TRITON_DEFAULT_FP_FUSION": os.environ.get("TRITON_DEFAULT_FP_FUSION", "1")}
    proc = subprocess.Popen([sys.executable, "-I", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(json.dumps(work), timeout=BUDGET_S)
    except subprocess.TimeoutExpired:
        return {"stopped": f"compiling took more than {BUDGET_S:g} s"}
    finally:  # its whole process group, whatever happened here (an interrupt included)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"stopped": f"the compile ended without a result (exit status {proc.returncode})"}
    return result if isinstance(result, dict) else {"stopped": "the compile sent no result"}


def _classify(line: str) -> tuple[str, str]:
    """``(symptom key, what was found)`` for Triton's first meaningful line."""
    said = f"Triton says: {line}"
    referenced = re.search(r"Unsupported function referenced: (.+)$", line)
    if referenced:
        return "python_helper", f"calls {referenced.group(1)}, a plain Python function ({said})"
    if "a plain Python function, which a GPU cannot run" in line:
        return "python_helper", line.split(": ", 1)[-1]
    if re.search(r"unsupported AST node type: (Break|Continue)|`return` statements inside", line):
        return "loop_exit", said
    if "power of 2" in line or "power of two" in line:
        return "power_of_two", said
    if "Cannot access global variable" in line:
        return "global_value", said
    return "gpu_compile", said


def _line_naming(work: dict, line: str) -> dict:
    """The first source line that names what Triton refused (``LOG.debug``), when its message has no
    line of its own."""
    referenced = re.search(r"referenced: ([\w.]+)$", line) or re.search(r"([\w.]+) is a plain Python", line)
    if not referenced:
        return {}
    for fn in work["functions"]:
        for number, text in enumerate(fn["source"].splitlines(), 1):
            if referenced.group(1) in text:
                return {"function": fn["name"], "line": number, "code": text.strip()}
    return {}


def check(ex: Exercise, kernel, level: int = 0, progress=None) -> bool:
    """Compile the learner's kernel for sm_90 in the compile subprocess; report. ``True`` when it
    compiled (or this machine cannot compile at all, which the report says)."""
    try:
        work = job(ex, kernel)
    except Unreadable as err:
        say(f"  FAIL  compiling for a GPU: the source of {err} could not be read")
        say(f"  hint: {ex.hint('source_unreadable')}")
        return False
    key = hashlib.sha256(json.dumps(work, sort_keys=True, default=repr).encode()).hexdigest()
    result = _CACHE.get(key)
    if result is None:
        if progress is not None:
            progress.status(f"compiling the kernel for a GPU (sm_{ARCH}, no GPU needed)", now=True)
        result = _run_worker(work)
        if "skip" not in result:
            _CACHE[key] = result
    if result.get("ok"):
        say("  ok    compiles for a GPU")
        return True
    if "skip" in result:
        say(f"  note: not compiled for a GPU here: {result['skip']}")
        return True
    say(f"  FAIL  compiling for a GPU (sm_{ARCH}): every case passed in the interpreter, which runs the "
        f"kernel as Python, but Triton cannot compile it")
    if "stopped" in result:
        say(f"    found: {result['stopped']}")
        say(f"  hint: {ex.hint('compile_slow' if 'took more than' in result['stopped'] else 'gpu_compile')}")
    else:
        chain = [tuple(m.split(": ", 1)) if ": " in m else (m, "") for m in result.get("messages", [])]
        line = message_line(chain) or "no message"
        key, found = _classify(line)
        where = result.get("where") or _line_naming(work, line)
        if where:
            say(f"    found: line {where.get('line')} of {where.get('function')}: {where.get('code')}")
        say(f"    found: {found}")
        say(f"  hint: {ex.hint(key)}")
    if level:
        say_level(ex, level)
    return False


__all__ = ["ARCH", "BUDGET_S", "Unreadable", "launch_of", "job", "check"]
