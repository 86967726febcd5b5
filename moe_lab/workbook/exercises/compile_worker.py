"""The subprocess side of :mod:`.gpu_compile`: rebuild the learner's kernel from its source, compile it.

Run as ``python -I compile_worker.py`` with ``TRITON_INTERPRET=0``; reads one job (JSON) on stdin and
writes one result (JSON) on stdout. It imports nothing of moe_lab (only the standard library, Triton
and :mod:`.confine`, loaded by path), and confines itself before it reads the job.

A job is ``{"functions": [{"name", "source", "globals"}, ...], "signature", "constexprs", "arch",
"num_warps"}``; function 0 is the kernel. Each global is described, never sent as an object:

* ``{"module": name}`` a Triton module, imported here;
* ``{"import": [module, qualname]}`` an object of Triton's, looked up here;
* ``{"value": v}``, ``{"tuple": [...]}``, ``{"constexpr": v}``, ``{"dtype": name}``,
  ``{"constexpr_dtype": name}`` plain values;
* ``{"jit": i}`` the job's function ``i``;
* ``{"stand_in": what, "callable": bool}`` anything else (a plain Python function, an object): a
  stand-in that Triton refuses as it would refuse the real one, and that runs nothing;
* ``{"stand_in_module": name, "attrs": {...}}`` a module that is not Triton's: a module whose
  attributes are the described ones, every other attribute a stand-in function.

The result: ``{"ok": true}``, ``{"ok": false, "messages": [...], "type": ..., "where": {...}}`` (Triton's
messages, innermost cause first, and the kernel line it names), or ``{"skip": reason}`` when this
machine cannot compile for the target at all.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import os
import sys
import tempfile
import types

PURE_BUILTINS = {name: getattr(builtins, name) for name in (
    "abs", "bool", "divmod", "float", "int", "len", "max", "min", "pow", "range", "round", "sum",
    "tuple", "True", "False", "None")}
"""What a kernel's ``def`` line may use (defaults such as ``max(64, 1)``): arithmetic only, nothing that
reaches modules, files or attributes."""


class _StandIn:
    """Stands in for a plain Python object the kernel names; its attributes are stand-in functions."""

    def __init__(self, what: str):
        self._what = what

    def __repr__(self) -> str:
        return self._what

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _StandInFunction(f"{self._what}.{attr}")


class _StandInFunction(_StandIn):
    """Stands in for a plain Python function: Triton refuses it ("Unsupported function referenced");
    called at compile time (through a tl.constexpr) it raises instead of running anything. It has no
    attributes (Triton asks a constexpr's value for some)."""

    def __getattr__(self, attr: str):
        raise AttributeError(attr)

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{self._what} is a plain Python function, which a GPU cannot run")


def _stand_in_module(name: str, attrs: dict, build) -> types.ModuleType:
    module = types.ModuleType(name)
    for attr, spec in attrs.items():
        setattr(module, attr, build(spec))
    module._moe_lab_stand_in = True

    def other(attr):  # PEP 562: any other attribute is a stand-in function
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _StandInFunction(f"{name}.{attr}")

    module.__getattr__ = other
    return module


def _builder(jitted: list):
    import importlib

    import triton.language as tl

    def build(spec: dict):
        if "module" in spec:
            return importlib.import_module(spec["module"])
        if "import" in spec:
            target = importlib.import_module(spec["import"][0])
            for part in spec["import"][1].split("."):
                target = getattr(target, part)
            return target
        if "value" in spec:
            return spec["value"]
        if "tuple" in spec:
            return tuple(spec["tuple"])
        if "constexpr" in spec:
            return tl.constexpr(spec["constexpr"])
        if "dtype" in spec or "constexpr_dtype" in spec:
            dtype = getattr(tl, spec.get("dtype") or spec["constexpr_dtype"])
            return dtype if "dtype" in spec else tl.constexpr(dtype)
        if "jit" in spec:
            return _Later(spec["jit"])
        if "stand_in_module" in spec:
            return _stand_in_module(spec["stand_in_module"], spec.get("attrs", {}), build)
        stand_in = (_StandInFunction if spec.get("callable") else _StandIn)(spec.get("stand_in", "?"))
        return tl.constexpr(stand_in) if spec.get("constexpr_of") else stand_in

    return build


class _Later:
    """A reference to a function of the job, filled in once every function is built."""

    def __init__(self, index: int):
        self.index = index


def _resolve_later(value, jitted):
    if isinstance(value, _Later):
        return jitted[value.index]
    if isinstance(value, types.ModuleType) and vars(value).get("_moe_lab_stand_in"):
        for attr, v in list(vars(value).items()):
            if isinstance(v, _Later):
                setattr(value, attr, jitted[v.index])
    return value


def _build(job: dict, tmp: str):
    """The job's functions as @triton.jit functions, each with its own globals."""
    import triton

    jitted, spaces = [], []
    build = _builder(jitted)
    for i, fn in enumerate(job["functions"]):
        space = {"__name__": f"kernel_source_{i}", "__builtins__": dict(PURE_BUILTINS)}  # arithmetic only
        space.update({name: build(spec) for name, spec in fn["globals"].items()})
        path = os.path.join(tmp, f"{fn['name']}_{i}.py")
        with open(path, "w") as fh:
            fh.write(fn["source"])
        exec(compile(fn["source"], path, "exec"), space)  # a def: defines the function, runs no body
        jitted.append(triton.jit(space[fn["name"]]))
        spaces.append(space)
    for space in spaces:
        for name, value in list(space.items()):
            space[name] = _resolve_later(value, jitted)
    return jitted[0]


def _where(err: BaseException) -> dict:
    """The innermost Triton compile error's function and line (its ``src`` starts at ``def``)."""
    found, e, seen = {}, err, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        node, src = getattr(e, "node", None), getattr(e, "src", None)
        if isinstance(src, str) and getattr(node, "lineno", None):
            lines = src.split("\n")
            head = lines[0].split("(")[0].replace("def ", "").strip()
            if 0 < node.lineno <= len(lines):
                found = {"function": head, "line": node.lineno, "code": lines[node.lineno - 1].strip()}
        e = e.__cause__ or e.__context__
    return found


def _messages(err: BaseException) -> list[str]:
    chain, e = [], err
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return [f"{type(x).__name__}: {getattr(x, 'error_message', None) or x}" for x in reversed(chain)]


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("moe_lab_confine", os.path.join(here, "confine.py"))
    confine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(confine)
    confine.confine()
    job = json.loads(sys.stdin.read())
    try:
        import triton
        from triton.backends import backends
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except Exception as err:  # noqa: BLE001 - no compiler here: the caller skips, it is not the kernel's fault
        print(json.dumps({"skip": f"Triton could not be loaded ({type(err).__name__}: {err})"}))
        return
    if "nvidia" not in backends:
        print(json.dumps({"skip": "this Triton has no NVIDIA backend to compile for"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kernel = _build(job, tmp)
            signature = {name: kind for name, kind in job["signature"]}
            attrs = {(i,): [["tt.divisibility", 16]] for i, (_, kind) in enumerate(job["signature"])
                     if kind.startswith("*")}  # torch allocations are 16-byte aligned
            source = ASTSource(fn=kernel, signature=signature, constexprs=dict(job["constexprs"]),
                               attrs=attrs)
            triton.compile(source, target=GPUTarget("cuda", job["arch"], 32),
                           options={"num_warps": job["num_warps"]})
        except Exception as err:  # noqa: BLE001 - what Triton says is the report
            print(json.dumps({"ok": False, "type": type(err).__name__, "messages": _messages(err),
                              "where": _where(err)}))
            return
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
