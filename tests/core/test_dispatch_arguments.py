"""prepare_dispatch refuses every bad argument with a clear error before anything is allocated or
launched (align that overflows the int32 offsets, a graph_safe that is not a bool, a padding that is not
a name, a tensor whose memory does not hold its values), and its outputs are deterministic exactly where
docs/dispatch.md says they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moe_lab.dispatch import call, op, prepare_dispatch
from moe_lab.dispatch.data import make_inputs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dispatch.md"


def _inputs(device, tokens=4, topk=2):
    return make_inputs(tokens, topk, 16, device=device)


@pytest.mark.parametrize("align, num_local, words", [
    (2**31, 8, "align=2147483648 with num_local=8"),
    (2**22, 1024, "past the int32 offsets"),
    (2**28, 8, "use a smaller align"),
])
def test_an_align_whose_rows_overflow_the_int32_offsets_is_refused(device, align, num_local, words):
    ids, x, scales = _inputs(device)
    for graph_safe in (False, True):
        with pytest.raises(ValueError, match="align") as info:
            prepare_dispatch(ids, 0, num_local, x, scales, align=align, graph_safe=graph_safe)
        assert words in str(info.value)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, [True]])
def test_graph_safe_must_be_a_bool(device, value):
    ids, x, scales = _inputs(device)
    with pytest.raises(TypeError, match=r"graph_safe must be True or False, got"):
        prepare_dispatch(ids, 0, 8, x, scales, graph_safe=value)


@pytest.mark.parametrize("padding", [["expert"], b"skip", None, "Expert"])
def test_padding_must_be_one_of_its_names(device, padding):
    ids, x, scales = _inputs(device)
    with pytest.raises(ValueError, match=r"padding must be one of \('expert', 'skip'\)"):
        prepare_dispatch(ids, 0, 8, x, scales, padding=padding)


@pytest.mark.parametrize("align", [True, 128.0, "128"])
def test_align_must_be_an_integer(device, align):
    ids, x, scales = _inputs(device)
    with pytest.raises(TypeError, match="align must be an integer"):
        prepare_dispatch(ids, 0, 8, x, scales, align=align)


@pytest.mark.parametrize("graph_safe", [False, True])
def test_deterministic_outputs_are_the_same_bits_and_padding_rows_are_never_written(device, graph_safe):
    """Two calls with different poison under every fresh buffer: every output the docs call deterministic
    comes out bit-identical; the padding rows of rows and scales keep each call's poison."""
    ids, x, scales = make_inputs(30, 4, 24, pad_rows=3, seed=5, device=device)
    old = op.POISON
    got = []
    try:
        for poison in (0x11, 0xEE):
            op.POISON = poison
            got.append(prepare_dispatch(ids, 4, 8, x, scales, align=16, graph_safe=graph_safe))
    finally:
        op.POISON = old
    a, b = got
    for name in ("adjusted_ids", "expert_count", "offsets", "output_index", "m_indices"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert f"`{name}`" in DOCS.read_text()
    assert a.num_rows == b.num_rows
    used = a.output_index[a.output_index >= 0].long().cpu()
    for name in ("rows", "scales"):
        left, right = (getattr(t, name).cpu().contiguous().view(torch.uint8) for t in (a, b))
        assert torch.equal(left[used], right[used]), name
        padding = torch.ones(left.shape[0], dtype=torch.bool)
        padding[used] = False
        assert padding.any() and not torch.equal(left[padding], right[padding]), name  # never written
    text = " ".join(DOCS.read_text().split())
    assert "are never written" in text and "the same bits on every run" in text


# --- tensors whose memory does not hold their values, on the first call of a shape and on a kept plan ----

def _args(device):
    ids, x, scales = _inputs(device)
    return {"topk_ids": ids, "x": x, "scales": scales}


def _call(args, graph_safe):
    return prepare_dispatch(args["topk_ids"], 0, 8, args["x"], args["scales"], graph_safe=graph_safe)


def _freed(t):
    t = t.clone()
    t.untyped_storage().resize_(0)
    return t


@pytest.mark.parametrize("kept", [False, True], ids=["first call", "kept plan"])
@pytest.mark.parametrize("graph_safe", [False, True])
@pytest.mark.parametrize("which", ["topk_ids", "x", "scales"])
@pytest.mark.parametrize("make, pattern", [
    (torch._neg_view, r"{name} has its negation bit set .*pass {name}\.resolve_neg\(\)"),
    (_freed, r"{name} has no memory behind its \d+ elements \(its data pointer is 0"),
], ids=["negation bit", "freed storage"])
def test_tensors_whose_memory_does_not_hold_them_are_refused(device, which, graph_safe, kept, make, pattern):
    """A negated view of the scales (or ids, or rows) would be copied as the memory holds it, the values
    negated; a storage freed under a tensor of a shape seen before would be read at address 0."""
    call.forget()
    args = _args(device)
    if kept:  # a good call of the same shape first: the shape's plan is kept and skips the full check
        _call(args, graph_safe)
        assert call.kept() == 1
    args[which] = make(args[which])
    with pytest.raises(ValueError, match=pattern.format(name=which)):
        _call(args, graph_safe)


def test_num_local_past_the_histograms_is_named_num_local(device):
    ids, x, scales = _inputs(device)
    for num_local in (1025, 2**20):
        with pytest.raises(ValueError, match=rf"^num_local={num_local} is more than the 1024 local experts "
                                             rf"the dispatch layout keeps") as info:
            prepare_dispatch(ids, 0, num_local, x, scales)
        assert "num_local_experts" not in str(info.value)
    with pytest.raises(ValueError, match=r"^num_local=16777217 is more than the 16777216 \(2\*\*24\)"):
        prepare_dispatch(ids, 0, 2**24 + 1, x, scales, align=2**10)  # before the rows it would need
