"""Bad input gets a TypeError/ValueError that names the argument and what was given, in every stage.

Each case below is run against every stage (the checks live in ``moe_lab/checks.py`` and every
stage must call them before launching anything). ``match=`` pins both halves of the message: the
argument's name and the value, dtype or shape the caller passed.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import moe_lab
from moe_lab import verify
from moe_lab.stages import best

INT32_MAX = 2**31 - 1
ALL_STAGES = list(moe_lab.STAGES)
TRITON_STAGES = [name for name, s in moe_lab.STAGES.items() if s.uses_triton]


def good_ids(device, shape=(5, 4), dtype=torch.int32):
    return torch.randint(-1, 16, shape, dtype=dtype).to(device)


# (id, builds (topk_ids, start, num_local) from a device, exception type, regex the message must match)
BAD_INPUTS = [
    ("float32 ids", lambda d: (good_ids(d).float(), 0, 8), TypeError, r"topk_ids.*got torch\.float32"),
    ("bool ids", lambda d: (good_ids(d) > 3, 0, 8), TypeError, r"topk_ids.*got torch\.bool"),
    ("int16 ids", lambda d: (good_ids(d).to(torch.int16), 0, 8), TypeError, r"topk_ids.*got torch\.int16"),
    ("uint8 ids", lambda d: (good_ids(d).clamp(min=0).to(torch.uint8), 0, 8), TypeError,
     r"topk_ids.*got torch\.uint8"),
    ("1-D ids", lambda d: (good_ids(d).reshape(-1), 0, 8), ValueError,
     r"topk_ids must be 2-D.*got 1-D with shape \(20,\)"),
    ("3-D ids", lambda d: (good_ids(d, (2, 3, 4)), 0, 8), ValueError,
     r"topk_ids must be 2-D.*got 3-D with shape \(2, 3, 4\)"),
    ("0-D ids", lambda d: (torch.tensor(3, dtype=torch.int32, device=d), 0, 8), ValueError,
     r"topk_ids must be 2-D.*got 0-D"),
    ("transposed ids", lambda d: (good_ids(d, (8, 4)).t(), 0, 8), ValueError,
     r"topk_ids must be contiguous.*got strides \(1, 4\) for shape \(4, 8\)"),
    ("list of ids", lambda d: ([[1, 2], [3, 4]], 0, 8), TypeError,
     r"topk_ids must be a torch\.Tensor.*got list"),
    ("numpy ids", lambda d: (np.zeros((2, 2), dtype=np.int32), 0, 8), TypeError,
     r"topk_ids must be a torch\.Tensor.*got ndarray"),
    ("negative start", lambda d: (good_ids(d), -1, 8), ValueError,
     r"start must be >= 0, got -1"),
    ("num_local 0", lambda d: (good_ids(d), 0, 0), ValueError, r"num_local must be > 0, got 0"),
    ("num_local -3", lambda d: (good_ids(d), 0, -3), ValueError, r"num_local must be > 0, got -3"),
    ("range past int32", lambda d: (good_ids(d), INT32_MAX - 3, 8), ValueError,
     rf"start \+ num_local = {INT32_MAX + 5} is past the int32 range"),
    ("bool start", lambda d: (good_ids(d), True, 8), TypeError,
     r"start must be an integer, got a bool \(True\)"),
    ("bool num_local", lambda d: (good_ids(d), 0, False), TypeError,
     r"num_local must be an integer, got a bool \(False\)"),
    ("float num_local", lambda d: (good_ids(d), 0, 8.0), TypeError,
     r"num_local must be an integer, got float \(8\.0\)"),
    ("string start", lambda d: (good_ids(d), "0", 8), TypeError,
     r"start must be an integer, got str \('0'\)"),
    ("float tensor start", lambda d: (good_ids(d), torch.tensor(2.5), 8), TypeError,
     r"start must be an integer, got a tensor of shape \(\) and dtype torch\.float32"),
    ("vector tensor num_local", lambda d: (good_ids(d), 0, torch.tensor([8, 8])), TypeError,
     r"num_local must be an integer, got a tensor of shape \(2,\)"),
    ("more than 2**31 - 1 slots", lambda d: (torch.empty((2**31, 1), dtype=torch.int32, device="meta"), 0, 8),
     ValueError, r"topk_ids has 2147483648 slots, more than the 2\*\*31 - 1"),
]


@pytest.mark.parametrize("stage_name", ALL_STAGES)
@pytest.mark.parametrize("make, error, pattern", [pytest.param(*b[1:], id=b[0]) for b in BAD_INPUTS])
def test_bad_input_is_named(stage_name, make, error, pattern, device):
    topk_ids, start, num_local = make(device)
    with pytest.raises(error, match=pattern):
        moe_lab.stage(stage_name).run(topk_ids, start, num_local)


@pytest.mark.parametrize("stage_name", TRITON_STAGES)
def test_cpu_tensor_when_kernels_need_the_gpu(stage_name, monkeypatch):
    """What a user on a GPU machine sees when passing a CPU tensor (simulated: backend says GPU)."""
    monkeypatch.setattr(moe_lab.backend, "INTERPRETER", False)
    ids = torch.randint(-1, 16, (5, 4), dtype=torch.int32)
    with pytest.raises(ValueError, match=rf"topk_ids is on cpu, but the Triton kernels \(stage "
                                         rf"'{stage_name}'\) run on the GPU; pass topk_ids\.cuda\(\)"):
        moe_lab.stage(stage_name).run(ids, 0, 8)


def test_torch_stage_takes_cpu_tensors_on_any_backend(monkeypatch):
    monkeypatch.setattr(moe_lab.backend, "INTERPRETER", False)
    ids = torch.tensor([[0, 5, -1], [3, 9, 2]], dtype=torch.int32)
    adjusted, counts = moe_lab.recombine(ids, 2, 4, stage="torch")
    assert adjusted.tolist() == [[-1, 3, -1], [1, -1, 0]] and counts.tolist() == [1, 1, 0, 1]


@pytest.mark.gpu
@pytest.mark.parametrize("stage_name", TRITON_STAGES)
def test_cuda_tensor_when_kernels_run_in_the_interpreter(stage_name, monkeypatch):
    monkeypatch.setattr(moe_lab.backend, "INTERPRETER", True)
    ids = torch.randint(-1, 16, (5, 4), dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match=r"topk_ids is on cuda.*interpreter.*pass topk_ids\.cpu\(\)"):
        moe_lab.stage(stage_name).run(ids, 0, 8)


@pytest.mark.parametrize("stage_name", ALL_STAGES)
@pytest.mark.parametrize("start, num_local", [(np.int64(4), np.int32(8)), (torch.tensor(4), torch.tensor(8)),
                                              (torch.tensor([4]), 8)],
                         ids=["numpy", "0-d tensor", "1-element"])
def test_integer_like_arguments_are_accepted(stage_name, start, num_local, device):
    ids = torch.tensor([[4, 11, -1, 12], [3, 5, 7, 9]], dtype=torch.int32, device=device)
    adjusted, counts = moe_lab.stage(stage_name).run(ids, start, num_local)
    assert adjusted.cpu().tolist() == [[0, 7, -1, -1], [-1, 1, 3, 5]]
    assert counts.cpu().tolist() == [1, 1, 0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("stage_name", ALL_STAGES)
@pytest.mark.parametrize("shape", [(0, 8), (0, 6), (0, 1), (3, 0)])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=["int32", "int64"])
def test_empty_input_gives_empty_ids_and_zero_counts(stage_name, shape, dtype, device):
    ids = torch.empty(shape, dtype=dtype, device=device)
    case = verify.Case("empty", ids, 3, 5)
    result = verify.compare(moe_lab.stage(stage_name).run, case)  # outputs poisoned: zeros must be written
    assert result.ok, result.detail
    adjusted, counts = moe_lab.stage(stage_name).run(ids, 3, 5)
    assert adjusted.shape == shape and adjusted.dtype == dtype and adjusted.device == ids.device
    assert counts.dtype == torch.int32 and counts.tolist() == [0] * 5 and counts.device == ids.device


def test_unknown_stage_names_the_choices(device):
    with pytest.raises(ValueError, match=r"unknown stage 'fastest'; choose one of: torch, row_loop, naive"):
        moe_lab.recombine(good_ids(device), 0, 8, stage="fastest")


@pytest.mark.parametrize("make, error, pattern", [
    (lambda d: (good_ids(d), -1, 8), ValueError, r"current_expert_start_id must be >= 0, got -1"),
    (lambda d: (good_ids(d), 0, 0), ValueError, r"num_local_experts must be > 0, got 0"),
    (lambda d: (good_ids(d), "0", 8), TypeError, r"current_expert_start_id must be an integer, got str"),
    (lambda d: (good_ids(d), 0, 2**24 + 1), ValueError,
     r"num_local_experts=16777217 is more than the 16777216 \(2\*\*24\) local experts"),
], ids=["negative start", "zero experts", "string start", "too many experts"])
def test_drop_in_names_rtp_llm_arguments(make, error, pattern, device):
    topk_ids, start, num_local = make(device)
    with pytest.raises(error, match=pattern):
        moe_lab.recompute_topk_ids_sum_expert_count(topk_ids, start, num_local)


@pytest.mark.parametrize("name", [["best"], None, {}, 3, b"best"], ids=repr)
def test_a_stage_that_is_not_a_name_is_a_type_error_naming_stage(name, device):
    with pytest.raises(TypeError, match=rf"stage must be a stage name \(a str\), got {type(name).__name__} "
                                        rf"\({re.escape(repr(name))}\); choose one of: torch, row_loop"):
        moe_lab.recombine(good_ids(device), 0, 8, stage=name)


def test_recombine_takes_stage_keyword_only_by_that_name(device):
    with pytest.raises(TypeError, match="variant"):
        moe_lab.recombine(good_ids(device), 0, 8, variant="torch")


@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_meta_tensors_get_a_clear_error(stage_name):
    with pytest.raises(ValueError, match=r"topk_ids is a meta tensor \(shape \(4, 8\), no data\)"):
        moe_lab.stage(stage_name).run(torch.empty((4, 8), dtype=torch.int32, device="meta"), 0, 8)


@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_meta_start_gets_a_clear_error(stage_name, device):
    meta_start = torch.empty((), dtype=torch.int64, device="meta")
    with pytest.raises(TypeError,
                       match=r"start is a meta tensor \(a shape without data\).*pass a Python int"):
        moe_lab.stage(stage_name).run(good_ids(device), meta_start, 8)


# --- best's out-parameters ------------------------------------------------------------------

BAD_OUTS = [
    ("adjusted_out int64", lambda ids: dict(adjusted_out=torch.empty_like(ids, dtype=torch.int64)),
     ValueError,
     r"adjusted_out must be a contiguous torch\.int32 tensor of shape \(5, 4\).*got torch\.int64 \(5, 4\)"),
    ("adjusted_out wrong shape", lambda ids: dict(adjusted_out=torch.empty((4, 5), dtype=ids.dtype,
                                                                           device=ids.device)),
     ValueError, r"adjusted_out must be .* shape \(5, 4\).*got torch\.int32 \(4, 5\)"),
    ("adjusted_out list", lambda ids: dict(adjusted_out=[0] * 20), TypeError,
     r"adjusted_out must be a torch\.Tensor, got list"),
    ("expert_count_out int64", lambda ids: dict(expert_count_out=torch.zeros(8, dtype=torch.int64,
                                                                             device=ids.device)),
     ValueError, r"expert_count_out must be a contiguous torch\.int32 tensor of shape \(8,\).*"
                 r"got torch\.int64 \(8,\)"),
    ("expert_count_out too short", lambda ids: dict(expert_count_out=torch.zeros(7, dtype=torch.int32,
                                                                                 device=ids.device)),
     ValueError, r"expert_count_out must be .* shape \(8,\).*got torch\.int32 \(7,\)"),
    ("expert_count_out numpy", lambda ids: dict(expert_count_out=np.zeros(8, dtype=np.int32)), TypeError,
     r"expert_count_out must be a torch\.Tensor, got ndarray"),
]


@pytest.mark.parametrize("make, error, pattern", [pytest.param(*b[1:], id=b[0]) for b in BAD_OUTS])
def test_best_rejects_wrong_out_buffers(make, error, pattern, device):
    ids = good_ids(device)
    outs = make(ids)
    for buffer in outs.values():
        if isinstance(buffer, torch.Tensor):
            buffer.fill_(77)
    with pytest.raises(error, match=pattern):
        best.run(ids, 0, 8, **outs)
    for buffer in outs.values():  # checked before anything was written
        if isinstance(buffer, torch.Tensor):
            assert (buffer == 77).all()


def test_best_non_contiguous_out_buffer_is_rejected_and_says_so(device):
    ids = good_ids(device)
    non_contiguous = torch.empty((4, 5), dtype=torch.int32, device=device).t()
    with pytest.raises(ValueError, match=r"adjusted_out must be a contiguous") as info:
        best.run(ids, 0, 8, adjusted_out=non_contiguous)
    assert re.search(r"adjusted_out.*(strides \(1, 5\)|not contiguous|non-contiguous)", str(info.value))
    every_other = torch.zeros(16, dtype=torch.int32, device=device)[::2]
    with pytest.raises(ValueError, match=r"expert_count_out must be a contiguous") as info:
        best.run(ids, 0, 8, expert_count_out=every_other)
    assert re.search(r"expert_count_out.*(strides \(2,\)|not contiguous|non-contiguous)", str(info.value))


def test_messages_say_how_to_fix():
    """Not just what is wrong: the message says what to do (the README promises it)."""
    ids = torch.zeros((2, 3), dtype=torch.int16)
    with pytest.raises(TypeError) as info:
        moe_lab.recombine(ids, 0, 8, stage="torch")
    assert "topk_ids.to(torch.int32)" in str(info.value)
    with pytest.raises(ValueError) as info:
        moe_lab.recombine(torch.zeros((3, 8), dtype=torch.int32).t(), 0, 8, stage="torch")
    assert "topk_ids.contiguous()" in str(info.value)
    with pytest.raises(ValueError) as info:
        moe_lab.recombine(torch.zeros(8, dtype=torch.int32), 0, 8, stage="torch")
    assert re.search(r"view\(-1, topk\)", str(info.value))


def _overlapping_outputs(ids):
    """(id, out-parameters that overlap each other or the input, names the message must give)."""
    pool = torch.full((ids.numel() + 8,), 77, dtype=ids.dtype, device=ids.device)
    return [
        ("adjusted_out is topk_ids", dict(adjusted_out=ids), "adjusted_out overlaps topk_ids"),
        ("counts inside the ids", dict(expert_count_out=ids.view(-1)[4:12]),
         "expert_count_out overlaps topk_ids"),
        ("counts inside adjusted_out", dict(adjusted_out=pool[:ids.numel()].view(ids.shape),
                                            expert_count_out=pool[ids.numel() - 3:ids.numel() + 5]),
         "expert_count_out overlaps adjusted_out"),
    ]


@pytest.mark.parametrize("which", range(3), ids=["adjusted is ids", "counts in ids", "counts in adjusted"])
def test_best_refuses_overlapping_buffers(which, device):
    ids = good_ids(device, (5, 4))
    before = ids.clone()
    _, outs, message = _overlapping_outputs(ids)[which]
    with pytest.raises(ValueError, match=message + r" in memory.*pass separate buffers"):
        best.run(ids, 0, 8, **outs)
    assert torch.equal(ids, before)  # refused before any launch


def test_best_accepts_neighbouring_buffers(device):
    """Buffers that touch but do not overlap are fine (the check is on byte ranges, not storages)."""
    ids = good_ids(device, (5, 4))
    pool = torch.full((ids.numel() + 8,), 77, dtype=torch.int32, device=device)
    adjusted, counts = pool[:ids.numel()].view(ids.shape), pool[ids.numel():]
    best.run(ids, 0, 8, adjusted_out=adjusted, expert_count_out=counts)
    want_ids, want_counts = verify.reference(ids, 0, 8)
    assert torch.equal(adjusted, want_ids) and torch.equal(counts, want_counts)


def test_block_histogram_refuses_too_many_experts_before_allocating(monkeypatch, device):
    """num_local past MAX_BINS is refused before the counts (num_local int32s) are allocated."""
    from moe_lab.stages import block_histogram

    made = []

    def counting(owner, name):
        real = getattr(owner, name)

        def count(*args, **kwargs):
            made.append((name, args))
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, count)

    for owner, name in [(torch, "zeros"), (torch, "empty"), (torch, "empty_like"),
                        (torch.Tensor, "new_zeros"), (torch.Tensor, "new_empty")]:
        counting(owner, name)
    block_histogram.run(good_ids(device), 0, 8)
    assert made, "the counting sees the allocations of a call that is not refused"
    made.clear()
    with pytest.raises(ValueError, match=r"num_local=1048576 bins.*at most 1024.*stage='best'"):
        block_histogram.run(good_ids(device), 0, 2**20)
    assert made == []


# --- tensors whose memory does not hold their values --------------------------------------------

def negated(t):
    """A lazy negated view: it reads as ``t`` while its memory holds ``-t``."""
    return torch._neg_view(-t)


def freed(t):
    """``t``'s values in a tensor whose storage was then freed (as FSDP frees a parameter)."""
    t = t.clone()
    t.untyped_storage().resize_(0)
    return t


MEMORY_STATES = [
    pytest.param(negated, r"has its negation bit set \(a lazy negated view.*pass {name}\.resolve_neg\(\)",
                 id="negation bit"),
    pytest.param(freed, r"has no memory behind its \d+ elements \(its data pointer is 0.*resize_\(0\)",
                 id="freed storage"),
]


@pytest.mark.parametrize("stage_name", ALL_STAGES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=["int32", "int64"])
@pytest.mark.parametrize("make, pattern", MEMORY_STATES)
def test_ids_whose_memory_does_not_hold_them_are_refused(stage_name, dtype, make, pattern, device):
    """The kernels read raw memory: a negated view would count the negated ids, a freed storage would be
    read at address 0 (the torch stage crashed on a freed one)."""
    ids = make(good_ids(device, dtype=dtype))
    with pytest.raises(ValueError, match="topk_ids " + pattern.format(name="topk_ids")):
        moe_lab.stage(stage_name).run(ids, 0, 8)


@pytest.mark.parametrize("make, pattern", MEMORY_STATES)
def test_the_drop_in_refuses_ids_whose_memory_does_not_hold_them(make, pattern, device):
    with pytest.raises(ValueError, match="topk_ids " + pattern.format(name="topk_ids")):
        moe_lab.recompute_topk_ids_sum_expert_count(make(good_ids(device)), 0, 8)


@pytest.mark.parametrize("which", ["adjusted_out", "expert_count_out"])
@pytest.mark.parametrize("make, pattern", MEMORY_STATES)
def test_best_refuses_out_buffers_whose_memory_does_not_hold_them(which, make, pattern, device):
    """A negated out-buffer would read back every written value negated; a freed one would be written
    through address 0."""
    ids = good_ids(device)
    shape = ids.shape if which == "adjusted_out" else (8,)
    buffer = make(torch.full(shape, 77, dtype=torch.int32, device=device))
    with pytest.raises(ValueError, match=which + " " + pattern.format(name=which)):
        best.run(ids, 0, 8, **{which: buffer})


def test_views_and_grown_storages_are_accepted(device):
    """No false alarm: a view into a larger storage (an offset, a partial row range) and a storage grown
    past its tensor hold their values."""
    pool = torch.full((64,), -1, dtype=torch.int32, device=device)
    ids = good_ids(device)
    want_ids, want_counts = verify.reference(ids, 0, 8)
    pool[12:32] = ids.view(-1)
    grown = ids.clone()
    grown.untyped_storage().resize_(4096)
    for t in (pool[12:32].view(5, 4), grown):
        for stage_name in ("torch", "best"):
            adjusted, counts = moe_lab.stage(stage_name).run(t, 0, 8)
            assert torch.equal(adjusted, want_ids) and torch.equal(counts, want_counts), stage_name
    out = torch.full((64,), 77, dtype=torch.int32, device=device)
    adjusted, counts = best.run(ids, 0, 8, adjusted_out=out[4:24].view(5, 4), expert_count_out=out[40:48])
    assert torch.equal(adjusted, want_ids) and torch.equal(counts, want_counts)


def test_an_empty_negated_or_freed_tensor_holds_nothing_to_misread(device):
    for make in (negated, freed):
        adjusted, counts = best.run(make(torch.empty((0, 8), dtype=torch.int32, device=device)), 0, 8)
        assert adjusted.shape == (0, 8) and counts.tolist() == [0] * 8


# --- num_local has a stated maximum ------------------------------------------------------------

def test_the_maximum_of_num_local_is_stated():
    import inspect

    from moe_lab import checks

    assert checks.MAX_LOCAL == 2**24
    stated = r'MAX_LOCAL = 2\*\*24\n"""Most local experts one call takes \(``num_local``\): 16,777,216'
    assert re.search(stated, inspect.getsource(checks))


@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_num_local_past_the_maximum_is_refused_before_allocating(stage_name, device):
    """A num_local of a global id or a size (2**31 - 3 used to try a 8 GiB allocation) is refused."""
    for num_local in (2**24 + 1, 2**31 - 3):
        with pytest.raises(ValueError, match=rf"num_local={num_local} is more than the 16777216 \(2\*\*24\) "
                                             rf"local experts a call takes"):
            moe_lab.stage(stage_name).run(good_ids(device), 0, num_local)


@pytest.mark.parametrize("stage_name", ["torch", "best"])
def test_num_local_at_the_maximum_is_taken(stage_name, device):
    ids = torch.tensor([[3, 2**24 - 1, -1], [2**24, 0, 3]], dtype=torch.int32, device=device)
    adjusted, counts = moe_lab.stage(stage_name).run(ids, 0, 2**24)
    assert adjusted.tolist() == [[3, 2**24 - 1, -1], [-1, 0, 3]]
    assert counts.shape == (2**24,) and counts.sum().item() == 4 and counts[3].item() == 2
