"""Input checks shared by every stage: bad input gets a clear error, never a crash inside Triton.

Each message names the argument, says what was given and what is expected, and how to fix it.
No check reads tensor *values*, so none of them syncs with the GPU (``best`` stays graph-safe).

A tensor's memory must hold its values as they are (:func:`check_memory`): the kernels read and write
raw memory, so a tensor with its negation bit set (a lazy view: its memory holds the values negated)
or one whose storage was freed under it (``untyped_storage().resize_(0)``, as FSDP frees a parameter:
its data pointer is 0) is refused, for inputs and for the output buffers a caller passes. Both cost two
attribute reads per call. A storage shrunk to a smaller non-zero size under its tensor is not detected
(that needs the storage's size, read through a new storage object on every call); torch itself refuses
to make a view past its storage.
"""

from __future__ import annotations

import operator

import torch

from moe_lab import backend

INT32_MAX = 2**31 - 1
ID_DTYPES = (torch.int32, torch.int64)
MAX_LOCAL = 2**24
"""Most local experts one call takes (``num_local``): 16,777,216, 65,536 times DeepSeek-V3's 256 routed
experts and past any model's expert count; their counts take 64 MiB. A larger value is a mistake (a
global id or a size passed by accident), refused before anything is allocated."""


def as_int(name: str, value) -> int:
    """``value`` as a Python int (accepts ints, numpy ints, 0-d integer tensors), else TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool ({value!r})")
    if isinstance(value, torch.Tensor):
        if value.is_meta:
            raise TypeError(f"{name} is a meta tensor (a shape without data), so it has no value to read; "
                            f"pass a Python int")
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer, got a tensor of shape {tuple(value.shape)} "
                            f"and dtype {value.dtype}")
        return int(value.item())
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})") from None


SHORT_NAMES = ("start", "num_local")
DROP_IN_NAMES = ("current_expert_start_id", "num_local_experts")  # rtp-llm's, used by the drop-in only


def check_args(topk_ids, start, num_local, *, stage: str = "", needs_triton: bool = True,
               names: tuple[str, str] = SHORT_NAMES) -> tuple[int, int]:
    """Validate the three arguments of a recombination call; return ``(start, num_local)`` as ints.

    ``names``: what the messages call ``start`` and ``num_local`` (the drop-in passes rtp-llm's names).
    """
    start_name, local_name = names
    if not isinstance(topk_ids, torch.Tensor):
        raise TypeError(f"topk_ids must be a torch.Tensor of shape [num_tokens, topk], "
                        f"got {type(topk_ids).__name__}")
    if topk_ids.dtype not in ID_DTYPES:
        raise TypeError(f"topk_ids must hold integer expert ids as torch.int32 or torch.int64, got "
                        f"{topk_ids.dtype}; convert with topk_ids.to(torch.int32)")
    if topk_ids.dim() != 2:
        raise ValueError(f"topk_ids must be 2-D [num_tokens, topk], got {topk_ids.dim()}-D with shape "
                         f"{tuple(topk_ids.shape)}; reshape it with topk_ids.view(-1, topk)")
    if not topk_ids.is_contiguous():
        raise ValueError(f"topk_ids must be contiguous (row-major), got strides {tuple(topk_ids.stride())} "
                         f"for shape {tuple(topk_ids.shape)}; pass topk_ids.contiguous()")
    slots = topk_ids.numel()
    if slots > INT32_MAX:
        raise ValueError(f"topk_ids has {slots} slots, more than the 2**31 - 1 that 32-bit "
                         f"indexing allows; split the batch")
    if slots:  # the ids are in its memory as they are (data pointer 0: freed storage or a meta tensor)
        if not topk_ids.data_ptr() or topk_ids.is_neg():
            check_memory("topk_ids", topk_ids)
    elif topk_ids.is_meta:
        check_memory("topk_ids", topk_ids)
    if type(start) is not int:  # noqa: E721  (exactly int: the common call skips the conversion)
        start = as_int(start_name, start)
    if type(num_local) is not int:  # noqa: E721
        num_local = as_int(local_name, num_local)
    if start < 0:
        raise ValueError(f"{start_name} must be >= 0, got {start}; it is the first global "
                         f"expert id this rank owns (rank * {local_name})")
    if num_local <= 0:
        raise ValueError(f"{local_name} must be > 0, got {num_local}; it is how many experts this "
                         f"rank owns (num_experts // ep_size)")
    if num_local > MAX_LOCAL:
        raise ValueError(f"{local_name}={num_local} is more than the {MAX_LOCAL} (2**24) local experts a "
                         f"call takes; it is how many experts this rank owns (num_experts // ep_size), "
                         f"far fewer in any model: pass that count, not a global id or a size")
    if start + num_local > INT32_MAX:
        raise ValueError(f"{start_name} + {local_name} = {start + num_local} is past the "
                         f"int32 range (max {INT32_MAX}); expert ids must fit in int32")
    if needs_triton and not (topk_ids.is_cpu if backend.INTERPRETER else topk_ids.is_cuda):  # wrong device
        _check_device(topk_ids, f" (stage {stage!r})" if stage else "")
    return start, num_local


def check_memory(name: str, t: torch.Tensor) -> None:
    """Refuse a tensor whose memory does not hold its values as a kernel reads them (see the module text)."""
    if t.is_meta:
        what = ("there are no ids to recombine; pass a tensor with data on the GPU (or the CPU for stage "
                "'torch')") if name == "topk_ids" else "pass a tensor with data"
        raise ValueError(f"{name} is a meta tensor (shape {tuple(t.shape)}, no data): {what}")
    if not t.numel():  # no elements: nothing to misread
        return
    if t.is_neg():
        raise ValueError(f"{name} has its negation bit set (a lazy negated view, as torch._neg_view makes): "
                         f"its memory holds the values negated, which a kernel would read as they lie; pass "
                         f"{name}.resolve_neg()")
    if not t.data_ptr():
        raise ValueError(f"{name} has no memory behind its {t.numel()} elements (its data pointer is 0: "
                         f"its storage was freed with untyped_storage().resize_(0), or it is a zero tensor "
                         f"without memory); a kernel would read or write address 0. Pass a tensor whose "
                         f"storage holds its values")


def _check_device(topk_ids: torch.Tensor, where: str) -> None:
    if backend.INTERPRETER:
        if topk_ids.device.type != "cpu":
            raise ValueError(f"topk_ids is on {topk_ids.device}, but Triton runs in the interpreter"
                             f"{where}, which takes CPU tensors; pass topk_ids.cpu()")
    elif topk_ids.device.type != "cuda":
        raise ValueError(f"topk_ids is on {topk_ids.device}, but the Triton kernels{where} run on the GPU; "
                         f"pass topk_ids.cuda(), or use stage='torch' for CPU tensors")


def check_outputs(topk_ids: torch.Tensor, num_local: int, adjusted, expert_count) -> None:
    """Validate caller-provided output buffers (the out-parameter form used with CUDA graphs)."""
    if adjusted is not None:
        if not isinstance(adjusted, torch.Tensor):
            raise TypeError(f"adjusted_out must be a torch.Tensor, got {type(adjusted).__name__}")
        if (adjusted.shape != topk_ids.shape or adjusted.dtype != topk_ids.dtype
                or adjusted.device != topk_ids.device or not adjusted.is_contiguous()):
            raise ValueError(f"adjusted_out must be a contiguous {topk_ids.dtype} tensor of shape "
                             f"{tuple(topk_ids.shape)} on {topk_ids.device}, got {_describe(adjusted)}")
        check_memory("adjusted_out", adjusted)
    if expert_count is not None:
        if not isinstance(expert_count, torch.Tensor):
            raise TypeError(f"expert_count_out must be a torch.Tensor, got {type(expert_count).__name__}")
        if (expert_count.shape != (num_local,) or expert_count.dtype != torch.int32
                or expert_count.device != topk_ids.device or not expert_count.is_contiguous()):
            raise ValueError(f"expert_count_out must be a contiguous torch.int32 tensor of shape "
                             f"({num_local},) on {topk_ids.device}, got {_describe(expert_count)}")
        check_memory("expert_count_out", expert_count)
    named = [("topk_ids", topk_ids), ("adjusted_out", adjusted), ("expert_count_out", expert_count)]
    named = [(name, t) for name, t in named if t is not None]
    for i, (name_a, a) in enumerate(named):
        for name_b, b in named[i + 1:]:
            if _overlap(a, b):
                raise ValueError(f"{name_b} overlaps {name_a} in memory ({_span(name_b, b)}, "
                                 f"{_span(name_a, a)}): a kernel writing one would corrupt the other; "
                                 f"pass separate buffers (torch.empty_like(topk_ids) for adjusted_out, "
                                 f"torch.empty({num_local}, dtype=torch.int32, device=...) for "
                                 f"expert_count_out)")


def _bytes(t: torch.Tensor) -> tuple[int, int]:
    """``[first, end)`` byte addresses of a contiguous tensor's elements."""
    begin = t.data_ptr()
    return begin, begin + t.numel() * t.element_size()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False
    (a0, a1), (b0, b1) = _bytes(a), _bytes(b)
    return a0 < b1 and b0 < a1


def _span(name: str, t: torch.Tensor) -> str:
    first, end = _bytes(t)
    return f"{name} at bytes [{first:#x}, {end:#x})"


def _describe(t: torch.Tensor) -> str:
    text = f"{t.dtype} {tuple(t.shape)} on {t.device}"
    if not t.is_contiguous():
        text += f", not contiguous (strides {tuple(t.stride())}); pass .contiguous() or a fresh buffer"
    return text
