"""Writing a generated folder (the student edition, the book) so that no one's work is lost.

A generator builds its whole output in a temporary folder beside the target, then updates the target
file by file. What it wrote is listed, with each file's hash, in the folder's manifest (:data:`MANIFEST`),
so that a later run can tell its own files from a learner's:

* a file it wrote that nobody changed since is replaced by the new one (or removed, when the new
  build no longer has it);
* a file it wrote that has changed since (a learner saved their work in it) is kept as it is, and
  reported: with a note when its source changed since that copy was generated, and the command that
  would replace it (``replace=``: the learner's copy is then kept beside it, under a new name);
* files it did not write (a learner's own notebook, JupyterLab's ``.ipynb_checkpoints/``) are left
  alone, unless one stands where the new build puts a file: then nothing is written and the run is
  refused, naming it.

Refused as a whole, before anything is written: a target that is, contains or sits inside a source
folder, a symlink (the target or anything on a path it writes: links are never followed), a file, a
folder this tool did not generate (no manifest) or one generated as another kind. Each file is moved
into place with one atomic rename; the manifest names the files being replaced while the update runs,
so an interrupted update is finished by the next run rather than mistaken for a learner's work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from moe_lab.workbook.markers import holds_solutions

MANIFEST = ".moe_lab-generated.json"
"""The file, in every generated folder, that lists what the generator wrote (and each file's hash)."""


class RefusedOutput(ValueError):
    """The output folder cannot be written without risking someone's work (the message says why)."""


@dataclass(frozen=True)
class Kept:
    """A generated file that a learner changed, kept as they left it."""

    path: Path
    """Where it is (under the output folder)."""
    source_changed: bool
    """The generator now makes something else for it than the copy the learner started from."""
    dropped: bool = False
    """The generator no longer makes this file at all."""
    solutions: bool = False
    """It holds solutions (a solution notebook copied over it?)."""


@dataclass
class Outcome:
    """What one generation did to its output folder."""

    out: Path
    written: list[Path] = field(default_factory=list)
    """Every file of the new build now in place, in the order the build wrote them."""
    kept: list[Kept] = field(default_factory=list)
    backups: dict[Path, Path] = field(default_factory=dict)
    """File replaced on request -> where the learner's copy of it went."""


def quoted(path) -> str:
    """``path`` as a shell word (quoted where it has spaces or other special characters)."""
    return shlex.quote(str(path))


def here(path) -> str:
    """``path`` as a shell word for a command run from the current folder: relative when below it."""
    rel = os.path.relpath(os.path.abspath(path))
    return quoted(rel if not rel.startswith("..") else os.path.abspath(path))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def _write_manifest(out: Path, kind: str, src, files: dict, pending: dict | None = None) -> None:
    data = {"kind": kind, "source": str(src), "files": dict(sorted(files.items()))}
    if pending:
        data["pending"] = dict(sorted(pending.items()))
    tmp = out / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, out / MANIFEST)


def _sources(src) -> list:
    return [src] if isinstance(src, (str, os.PathLike)) else list(src)


def check_target(out: Path, src, *, kind: str, flag: str = "--out", names=()) -> None:
    """Raise :class:`RefusedOutput` unless a generated ``kind`` may be written into ``out``.

    ``src``: the source folder, or several: ``out`` may be none of them, inside none, contain none.
    ``names``: the relative paths the build will write, when known: any of them in the way is refused.
    """
    out_abs = Path(os.path.abspath(out))
    if out_abs.is_symlink():
        raise RefusedOutput(f"{flag} {quoted(out)} is a symlink: give a real folder (the {kind} never "
                            f"writes through links)")
    out_real = out_abs.resolve()
    for one in _sources(src):
        src_abs = Path(one).resolve()
        if out_real == src_abs or _inside(src_abs, out_real) or _inside(out_real, src_abs):
            raise RefusedOutput(f"{flag} {quoted(out)} would overwrite the source notebooks in "
                                f"{quoted(one)}: choose a separate folder, e.g. "
                                f"{flag} {here(out_real.parent / default_folder(kind))}")
    if not out_real.exists():
        return
    if not out_real.is_dir():
        raise RefusedOutput(f"{flag} {quoted(out)} is a file, not a folder: choose a folder for the {kind}")
    manifest = read_manifest(out_real)
    if manifest is None:
        if (out_real / MANIFEST).exists():
            raise RefusedOutput(f"{flag} {quoted(out)}: its {MANIFEST} is unreadable, so this tool cannot "
                                f"tell its own files from yours: choose a new or empty folder for the {kind}")
        if not any(out_real.iterdir()):
            return  # an empty folder
        solutions = [p.name for p in sorted(out_real.glob("*.ipynb")) if holds_solutions(p)]
        what = (f"the solution edition ({', '.join(solutions[:2])} hold solutions)" if solutions else
                f"files this tool did not create (no {MANIFEST})")
        raise RefusedOutput(f"{flag} {quoted(out)} holds {what}: choose a new or empty folder for the {kind}")
    if manifest.get("kind") != kind:
        raise RefusedOutput(f"{flag} {quoted(out)} was generated as a {manifest.get('kind')!r}, not a "
                            f"{kind}: choose another folder")
    listed, pending = manifest["files"], manifest.get("pending") or {}
    for rel in names:
        _check_path(out_real, rel, listed, pending, flag, out, kind)


def default_folder(kind: str) -> str:
    return {"student edition": "student", "book": "book"}.get(kind, "generated")


def _check_path(out: Path, rel: str, listed: dict, pending: dict, flag: str, shown, kind: str) -> None:
    """Refuse when something the generator did not write stands where it writes ``rel``."""
    where = out
    for part in Path(rel).parts[:-1]:
        where = where / part
        if where.is_symlink():
            raise RefusedOutput(f"{flag} {quoted(shown)}: {where.relative_to(out).as_posix()} is a symlink "
                                f"(links are never followed): remove it, or choose another folder")
        if where.exists() and not where.is_dir():
            raise RefusedOutput(f"{flag} {quoted(shown)}: {where.relative_to(out).as_posix()} is a file "
                                f"where this tool writes a folder: move it out, or choose another folder")
    dest = out / rel
    if dest.is_symlink():
        raise RefusedOutput(f"{flag} {quoted(shown)}: {rel} is a symlink this tool did not create (links "
                            f"are never followed): remove it, or choose another folder")
    if dest.is_dir():
        raise RefusedOutput(f"{flag} {quoted(shown)}: {rel} is a folder where this tool writes a file: move "
                            f"it out, or choose another folder")
    if dest.exists() and rel not in listed and rel not in pending:
        raise RefusedOutput(f"{flag} {quoted(shown)}: {rel} was not created by this tool (work of yours?) "
                            f"and the {kind} needs its name: move it out of the folder, or "
                            f"choose another folder")


def _files(folder: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under ``folder`` (links refused, never followed)."""
    found = {}
    for root, dirs, names in sorted(os.walk(folder)):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                raise RefusedOutput(f"the build would contain a symlink ({path.relative_to(folder)})")
        for name in names:
            path = Path(root) / name
            found[path.relative_to(folder).as_posix()] = path
    return dict(sorted(found.items()))


def _backup_name(dest: Path) -> Path:
    for n in range(1, 1000):
        tag = ".yours" if n == 1 else f".yours-{n}"
        candidate = dest.with_name(f"{dest.stem}{tag}{dest.suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise RefusedOutput(f"{dest}: too many earlier copies of yours beside it; move some out")


def update(out: Path, tmp: Path, src, *, kind: str, flag: str = "--out", replace=()) -> Outcome:
    """Bring ``out`` up to the build in ``tmp`` (see the module docstring); return what was done."""
    built = {rel: p for rel, p in _files(tmp).items() if rel != MANIFEST}
    unknown = sorted(set(replace) - set(built))
    if unknown:
        raise RefusedOutput(f"--replace {quoted(unknown[0])}: not a file of the {kind} (its files: "
                            f"{', '.join(sorted(r for r in built if '/' not in r))})")
    check_target(out, src, kind=kind, flag=flag, names=sorted(built))
    out = Path(out)
    out_real = Path(os.path.abspath(out)).resolve()
    manifest = read_manifest(out_real) or {"files": {}}
    listed, pending = manifest["files"], manifest.get("pending") or {}
    new = {rel: _sha256(p) for rel, p in built.items()}

    place, same, kept, backups, remove = [], [], [], {}, []
    for rel in built:
        dest = out_real / rel
        now = _sha256(dest) if dest.exists() else None
        if now == new[rel]:
            same.append(rel)  # already the new file: left untouched (an open editor sees no change)
        elif now is None or now in (listed.get(rel), pending.get(rel)):
            place.append(rel)  # missing, or as generated: replaced
        elif rel in replace:
            backups[rel] = _backup_name(dest)
            place.append(rel)
        else:
            kept.append(Kept(out / rel, source_changed=new[rel] != (listed.get(rel) or pending.get(rel)),
                             solutions=dest.suffix == ".ipynb" and holds_solutions(dest)))
    for rel in sorted(set(listed) - set(built)):
        dest = out_real / rel
        if dest.is_symlink() or not dest.is_file():
            continue
        if _sha256(dest) in (listed[rel], pending.get(rel)):
            remove.append(rel)
        else:
            kept.append(Kept(out / rel, source_changed=True, dropped=True))

    out_real.mkdir(parents=True, exist_ok=True)
    theirs = {k.path.relative_to(out).as_posix() for k in kept if not k.dropped}
    # the hash their copy was generated with: how a later run tells whether its source changed since
    files = {**{rel: listed.get(rel) or pending[rel] for rel in theirs}, **{rel: new[rel] for rel in same}}
    # while files move, either hash of a file being replaced means "as generated"
    _write_manifest(out_real, kind, _sources(src)[0], {**listed, **files},
                    pending={rel: new[rel] for rel in place})
    outcome = Outcome(out, kept=kept)
    for rel in place:
        dest = out_real / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if rel in backups:
            os.replace(dest, backups[rel])
            outcome.backups[out / rel] = out / backups[rel].relative_to(out_real)
        os.replace(built[rel], dest)
        files[rel] = new[rel]
    for rel in remove:
        (out_real / rel).unlink()
    _write_manifest(out_real, kind, _sources(src)[0], files)
    outcome.written = [out / rel for rel in built if rel not in theirs]
    return outcome


class Build:
    """The temporary folder a generator writes into; ``outcome`` once the target has been updated."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.outcome: Outcome | None = None


@contextlib.contextmanager
def replacing(out: Path, src, *, kind: str, flag: str = "--out", replace=()):
    """Yield a :class:`Build`; write the new output into ``build.tmp``. On success ``out`` is updated
    from it (:func:`update`) and ``build.outcome`` says what was done; on any error ``out`` is left as
    it was. The target is checked before anything is built and again before it is updated."""
    check_target(out, src, kind=kind, flag=flag)
    out_abs = Path(os.path.abspath(out))
    out_abs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_abs.name}.tmp-", dir=out_abs.parent))
    build = Build(tmp)
    try:
        yield build
        build.outcome = update(out, tmp, src, kind=kind, flag=flag, replace=replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["MANIFEST", "RefusedOutput", "Kept", "Outcome", "Build", "quoted", "here", "read_manifest",
           "check_target", "update", "replacing"]
