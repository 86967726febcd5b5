"""Writing a generated folder (the student edition, the book) so that no one's work can be lost.

A generator builds its whole output in a temporary folder beside the target and swaps it in only when
complete, so a failure leaves the old folder as it was. Before the swap it checks the target:

* it must not be, contain or sit inside the source folder, and must not be a symlink;
* if it exists and is not empty, it must carry the manifest (:data:`MANIFEST`) this module writes,
  every file in it must be one the manifest lists, unchanged since it was written (a learner's edits
  to a generated notebook are work), and no notebook in it may hold solution markers.

Nothing is ever written through an existing file: the old folder is removed as a whole (symlinks in it
are removed, never followed) after the new one has been moved into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MANIFEST = ".moe_lab-generated.json"
"""The file, in every generated folder, that lists what the generator wrote (and each file's hash)."""


class RefusedOutput(ValueError):
    """The output folder cannot be written without risking someone's work (the message says why)."""


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


def check_target(out: Path, src, *, kind: str, flag: str = "--out") -> None:
    """Raise :class:`RefusedOutput` unless ``out`` may be replaced by a generated ``kind`` folder.

    ``src``: the source folder, or several: ``out`` may be none of them, inside none, contain none.
    """
    out_abs = Path(os.path.abspath(out))
    if out_abs.is_symlink():
        raise RefusedOutput(f"{flag} {out} is a symlink: give a real folder (the {kind} never writes "
                            f"through links)")
    out_real = out_abs.resolve()
    for one in ([src] if isinstance(src, (str, os.PathLike)) else list(src)):
        src_abs = Path(one).resolve()
        if out_real == src_abs or _inside(src_abs, out_real) or _inside(out_real, src_abs):
            raise RefusedOutput(f"{flag} {out} would overwrite the source notebooks in {one}: choose a "
                                f"separate folder, e.g. {flag} {kind}")
    if not out_real.exists():
        return
    if not out_real.is_dir():
        raise RefusedOutput(f"{flag} {out} is a file, not a folder: choose a folder for the {kind}")
    entries = [p for p in out_real.rglob("*") if p.name != MANIFEST]
    if not entries and not (out_real / MANIFEST).exists():
        return  # an empty folder
    manifest = read_manifest(out_real)
    if manifest is None:
        raise RefusedOutput(f"{flag} {out} holds files this tool did not create (no {MANIFEST}): "
                            f"choose a new or empty folder for the {kind}")
    if manifest.get("kind") != kind:
        raise RefusedOutput(f"{flag} {out} was generated as a {manifest.get('kind')!r}, not a {kind}: "
                            f"choose another folder")
    listed = manifest["files"]
    for p in sorted(entries):
        rel = p.relative_to(out_real).as_posix()
        if p.is_symlink():
            raise RefusedOutput(f"{flag} {out}: {rel} is a symlink this tool did not create: remove it "
                                f"or choose another folder")
        if p.is_dir():
            continue
        if rel not in listed:
            raise RefusedOutput(f"{flag} {out}: {rel} was not created by this tool (work of yours?): "
                                f"move it out of the folder, or choose another folder")
        if p.suffix == ".ipynb" and _holds_solutions(p):
            raise RefusedOutput(f"{flag} {out}: {rel} holds solutions: it is not a generated copy")
        if _sha256(p) != listed[rel]:
            raise RefusedOutput(f"{flag} {out}: {rel} changed since it was generated (your work?): "
                                f"copy it elsewhere or delete it, then generate again")


def _holds_solutions(path: Path) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return "# BEGIN SOLUTION" in text


@contextlib.contextmanager
def replacing(out: Path, src: Path, *, kind: str, flag: str = "--out"):
    """Yield a temporary folder to write into; on success it replaces ``out`` (with a manifest).

    The target is checked before anything is written and again just before the swap; on any error the
    temporary folder is removed and ``out`` is left untouched.
    """
    out = Path(out)
    check_target(out, src, kind=kind, flag=flag)
    out_abs = Path(os.path.abspath(out))
    out_abs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_abs.name}.tmp-", dir=out_abs.parent))
    try:
        yield tmp
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_symlink():
                raise RefusedOutput(f"the {kind} would contain a symlink ({p.name}): refused")
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = _sha256(p)
        (tmp / MANIFEST).write_text(json.dumps({"kind": kind, "source": str(Path(src)), "files": files},
                                               indent=1, sort_keys=True))
        check_target(out, src, kind=kind, flag=flag)  # nothing changed under us meanwhile
        old = None
        if out_abs.exists():
            old = out_abs.parent / f".{out_abs.name}.old-{os.getpid()}"
            os.replace(out_abs, old)
        os.replace(tmp, out_abs)
        if old is not None:
            shutil.rmtree(old)  # removes links as links, never follows them
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def relocate(paths: list[Path], tmp: Path, out: Path) -> list[Path]:
    """The final paths of files written under ``tmp`` once it has become ``out``."""
    return [Path(out) / Path(p).relative_to(tmp) for p in paths]


__all__ = ["MANIFEST", "RefusedOutput", "read_manifest", "check_target", "replacing", "relocate"]
