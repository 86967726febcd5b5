"""Confining a process that runs the learner's code: it may not signal, trace or leave its process group.

The check's forked child (:mod:`.isolate`) and the compile subprocess (:mod:`.gpu_compile`) each lead a
process group of their own, which is killed as a whole when the check ends. :func:`confine` then
installs a seccomp filter (Linux, x86-64 and AArch64) that the process and everything it starts
inherit and cannot remove:

* ``kill``, ``tkill`` and ``tgkill`` reach only the process itself and its own group, so learner code
  cannot stop, interrupt or kill the notebook's process (``os.kill(os.getppid(), ...)``) or any other;
  ``pidfd_send_signal``, ``ptrace`` and ``process_vm_writev`` are refused outright;
* ``setsid`` and ``setpgid`` are refused, so a process the learner's code starts (a daemon that
  double-forks and calls ``setsid``) stays in the group and goes with it.

A refused call fails with ``EPERM`` (in Python a ``PermissionError``), which the check reports like any
other error. This module uses the standard library only: the compile subprocess loads it by path.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

# per architecture: (AUDIT_ARCH_*, kill, tkill, tgkill, setsid, setpgid, ptrace, process_vm_writev,
# pidfd_send_signal)
_ARCH = {
    "x86_64": (0xC000003E, 62, 200, 234, 112, 109, 101, 311, 424),
    "aarch64": (0xC00000B7, 129, 130, 131, 157, 154, 117, 271, 424),
}
_LD_W_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06
_ALLOW, _EPERM = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
_NR, _ARCH_AT, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (args[0]'s low word: little-endian)


def _program(arch: str, pid: int, pgid: int) -> list[tuple[int, int, int, int]]:
    """The filter as BPF instructions ``(code, jump if true, jump if false, k)``."""
    audit, kill, tkill, tgkill, *refused = _ARCH[arch]
    refusal = 9 + len(refused) + 1  # index of the EPERM return that the refused calls jump to
    prog = [(_LD_W_ABS, 0, 0, _ARCH_AT)]
    prog.append((_JEQ, 1, 0, audit))                       # 1: another ABI (i386 on x86-64): refuse
    prog.append((_RET, 0, 0, _EPERM))                       # 2
    prog.append((_LD_W_ABS, 0, 0, _NR))                     # 3
    prog.append((_JGE, 0, 1, 0x40000000))                   # 4: the x32 ABI: refuse
    prog.append((_RET, 0, 0, _EPERM))                       # 5
    signal_check = 6 + 3 + len(refused) + 2                 # after the three signal jumps, refusals, allow
    for i, nr in enumerate((kill, tkill, tgkill)):          # 6..8: to the pid check
        here = 6 + i
        prog.append((_JEQ, signal_check - here - 1, 0, nr))
    for i, nr in enumerate(refused):                        # refused outright
        here = 9 + i
        prog.append((_JEQ, refusal - here - 1, 0, nr))
    prog.append((_RET, 0, 0, _ALLOW))                       # everything else
    prog.append((_RET, 0, 0, _EPERM))                       # the refusal the jumps above land on
    assert len(prog) == signal_check
    prog.append((_LD_W_ABS, 0, 0, _ARG0))                   # the target: itself, 0 (its group), -its group
    prog.append((_JEQ, 3, 0, pid & 0xFFFFFFFF))
    prog.append((_JEQ, 2, 0, 0))
    prog.append((_JEQ, 1, 0, -pgid & 0xFFFFFFFF))
    prog.append((_RET, 0, 0, _EPERM))
    prog.append((_RET, 0, 0, _ALLOW))
    return prog


def supported() -> bool:
    """Whether :func:`confine` can install its filter here (Linux on x86-64 or AArch64)."""
    return platform.system() == "Linux" and platform.machine() in _ARCH


def confine() -> bool:
    """Install the filter on this process (and what it starts from now on); ``True`` when installed.

    Call it after the process has its own process group. It cannot be undone.
    """
    if not supported():
        return False
    prog = _program(platform.machine(), os.getpid(), os.getpgid(0))
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
        if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: what an unprivileged filter needs
            return False
        return libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
    except (OSError, AttributeError):
        return False


__all__ = ["supported", "confine"]
