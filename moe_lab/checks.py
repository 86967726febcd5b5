"""Input checks shared by every stage: bad input gets a clear error, never a crash inside Triton.

Each message names the argument, says what was given and what is expected, and how to fix it.
No check reads tensor *values*, so none of them syncs with the GPU (``best`` stays graph-safe).
"""

from __future__ import annotations

import operator

import torch

INT32_MAX = 2**31 - 1
ID_DTYPES = (torch.int32, torch.int64)


def as_int(name: str, value) -> int:
    """``value`` as a Python int (accepts ints, numpy ints, 0-d integer tensors), else TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool ({value!r})")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer, got a tensor of shape {tuple(value.shape)} "
                            f"and dtype {value.dtype}")
        return int(value.item())
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})") from None


def check_args(topk_ids, current_expert_start_id, num_local_experts, *, stage: str = "",
               needs_triton: bool = True) -> tuple[int, int]:
    """Validate the three arguments of a recombination call; return ``(start, num_local)`` as ints."""
    where = f" (stage {stage!r})" if stage else ""
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
    if topk_ids.numel() > INT32_MAX:
        raise ValueError(f"topk_ids has {topk_ids.numel()} slots, more than the 2**31 - 1 that 32-bit "
                         f"indexing allows; split the batch")
    start = as_int("current_expert_start_id", current_expert_start_id)
    num_local = as_int("num_local_experts", num_local_experts)
    if start < 0:
        raise ValueError(f"current_expert_start_id must be >= 0, got {start}; it is the first global "
                         f"expert id this rank owns (rank * num_local_experts)")
    if num_local <= 0:
        raise ValueError(f"num_local_experts must be > 0, got {num_local}; it is how many experts this "
                         f"rank owns (num_experts // ep_size)")
    if start + num_local > INT32_MAX:
        raise ValueError(f"current_expert_start_id + num_local_experts = {start + num_local} is past the "
                         f"int32 range (max {INT32_MAX}); expert ids must fit in int32")
    if needs_triton:
        _check_device(topk_ids, where)
    return start, num_local


def _check_device(topk_ids: torch.Tensor, where: str) -> None:
    from . import backend

    if backend.INTERPRETER:
        if topk_ids.device.type != "cpu":
            raise ValueError(f"topk_ids is on {topk_ids.device}, but Triton runs in the interpreter"
                             f"{where}, which takes CPU tensors; pass topk_ids.cpu()")
    elif topk_ids.device.type != "cuda":
        raise ValueError(f"topk_ids is on {topk_ids.device}, but the Triton kernels{where} run on the GPU; "
                         f"pass topk_ids.cuda(), or use variant='torch' for CPU tensors")


def check_outputs(topk_ids: torch.Tensor, num_local: int, adjusted, expert_count) -> None:
    """Validate caller-provided output buffers (the out-parameter form used with CUDA graphs)."""
    if adjusted is not None:
        if not isinstance(adjusted, torch.Tensor):
            raise TypeError(f"adjusted_out must be a torch.Tensor, got {type(adjusted).__name__}")
        if (adjusted.shape != topk_ids.shape or adjusted.dtype != topk_ids.dtype
                or adjusted.device != topk_ids.device or not adjusted.is_contiguous()):
            raise ValueError(f"adjusted_out must be a contiguous {topk_ids.dtype} tensor of shape "
                             f"{tuple(topk_ids.shape)} on {topk_ids.device}, got {_describe(adjusted)}")
    if expert_count is not None:
        if not isinstance(expert_count, torch.Tensor):
            raise TypeError(f"expert_count_out must be a torch.Tensor, got {type(expert_count).__name__}")
        if (expert_count.shape != (num_local,) or expert_count.dtype != torch.int32
                or expert_count.device != topk_ids.device or not expert_count.is_contiguous()):
            raise ValueError(f"expert_count_out must be a contiguous torch.int32 tensor of shape "
                             f"({num_local},) on {topk_ids.device}, got {_describe(expert_count)}")


def _describe(t: torch.Tensor) -> str:
    text = f"{t.dtype} {tuple(t.shape)} on {t.device}"
    if not t.is_contiguous():
        text += f", not contiguous (strides {tuple(t.stride())}); pass .contiguous() or a fresh buffer"
    return text
