"""The call plan of one shape: everything an eager ``prepare_dispatch`` call would otherwise redo.

The first call of a *shape* is checked in full (:mod:`.inputs`). Every one of those checks depends only on
the dtypes, shapes, strides and devices of ``topk_ids``, ``x`` and ``scales``, on ``num_local``,
``align``, ``padding`` and on where kernels run, plus ``start``'s value. :func:`key` is exactly those
properties, and the :class:`CallPlan` kept under it holds the launch plan (:mod:`.launch`,
:mod:`.blocks`), where each output lies in the call's one buffer, the launch arguments that never
change, and the compiled binaries of the launches per argument class. A later call of the shape checks
``start`` (the one value it reads), allocates one buffer, carves the outputs out of it and launches the
kept binaries with every pointer passed as its address.

Why it stays safe:

* only plain arguments are cached: exact ``torch.Tensor`` objects (no subclass) without the negation bit,
  ints, a str and a bool (``1`` and ``True`` hash alike, so a bool is required); a call with anything
  else is checked in full, and so is a call whose ``start`` is not a plain int in range: every bad
  argument meets the same check;
* the one property of a tensor that can change under the same metadata, the memory behind it (a storage
  freed with ``untyped_storage().resize_(0)``: its data pointer is 0), is checked on every call
  (:meth:`CallPlan.run`);
* a plan holds numbers, :class:`~moe_lab.launcher.Launcher` objects and compiled binaries, never a tensor
  or an address: every call allocates its own outputs and reads only its own arguments;
* a binary is kept per *argument class*: the current device, whether each pointer (the inputs and the
  call's buffers) is 16-byte aligned, and the value class Triton specialises an integer on (equal to 1,
  a multiple of 16) for each integer that can change between calls of one shape (``start``; with exact
  sizing also the rows and the scales' stride). The shape fixes everything else Triton specialises on,
  so equal classes mean equal :meth:`~moe_lab.launcher.Launcher.key` (``tests/core/test_dispatch_call.py``
  checks that) and a binary is never called for arguments it was not compiled for.
"""

from __future__ import annotations

import torch

from moe_lab import backend, launcher
from moe_lab.checks import check_memory
from moe_lab.dispatch import blocks, inputs, launch
from moe_lab.dispatch.kernels import FROM_IDS

MAX_PLANS = 256
"""Call plans kept; the cache is emptied when full and refills (a plan is rebuilt in tens of us)."""
PIECE = 16
"""Bytes every piece of a buffer is aligned to: the 16-byte pointers Triton specialises on and TMA needs."""
ROWS_ALIGN = 512
"""Bytes ``rows`` is aligned to inside the buffer: each row starts a cache line, as in its own allocation."""

_PLANS: dict = {}  # key(...) -> CallPlan; plans hold no tensors (see the module text)


def key(topk_ids, num_local, x, scales, align, padding, graph_safe):
    """The cache key of a call: every property the argument checks read, ``start`` apart; None for
    arguments the cache does not take (those calls are checked in full every time)."""
    T = torch.Tensor
    if (type(topk_ids) is not T or type(x) is not T or type(scales) is not T or type(num_local) is not int
            or type(align) is not int or type(padding) is not str or type(graph_safe) is not bool
            or topk_ids.is_neg() or x.is_neg() or scales.is_neg()):  # the full check refuses a negation bit
        return None
    try:
        return (topk_ids.shape, topk_ids.stride(), topk_ids.dtype, topk_ids.device, x.shape, x.stride(),
                x.dtype, x.device, scales.shape, scales.stride(), scales.dtype, scales.device, num_local,
                align, padding, graph_safe, backend.INTERPRETER)
    except RuntimeError:  # a tensor without strides (sparse): the full check says what is wrong
        return None


def find(k):
    """The plan kept under key ``k`` (None: not kept, or ``k`` is None)."""
    return _PLANS.get(k) if k is not None else None


def keep(k, plan) -> None:
    """Keep ``plan`` under key ``k`` (nothing for a None key)."""
    if k is None:
        return
    if len(_PLANS) >= MAX_PLANS:
        _PLANS.clear()
    _PLANS[k] = plan


def forget() -> None:
    """Drop every kept plan: the next call of each shape is checked in full and planned again."""
    _PLANS.clear()


def kept() -> int:
    """How many call plans are kept."""
    return len(_PLANS)


def make(a: inputs.Args, topk_ids, x, scales, skip_padding: bool, graph_safe: bool) -> CallPlan:
    """The call plan of checked arguments ``a``, with the design and launch plan the rules choose."""
    num_tokens, topk = topk_ids.shape
    if launch.uses_blocks(num_tokens, topk, a.num_local):
        cap = inputs.max_rows(num_tokens * topk, a.num_local, a.align)
        p = blocks.plan(num_tokens, topk, launch.bins_for(a.num_local), a.hidden, a.scale_cols,
                        skip_padding, cap)
    else:
        p = launch.plan(num_tokens, topk, a.num_local, a.hidden, a.scale_cols, a.packed, a.align,
                        skip_padding, graph_safe)
    return CallPlan(p, a, topk_ids, x, scales, graph_safe)


def _up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class CallPlan:
    """One shape's launches, buffer layout and kept binaries (see the module text); :meth:`run` calls."""

    __slots__ = ("graph_safe", "is_blocks", "device", "num_tokens", "topk", "slots", "num_local", "align",
                 "hidden", "cols", "fp32", "id64", "x_stride", "s_stride0", "s_stride1", "bins", "tiles",
                 "tile_blocks", "tile_slots", "entries", "table_runs", "table", "layout", "grid",
                 "rows_cap", "idx_at", "adj_at", "cnt_at", "off_at", "tab_at", "rows_at", "fixed_tail",
                 "kept_table", "kept_layout", "layout_args")

    def __init__(self, p, a: inputs.Args, topk_ids, x, scales, graph_safe: bool):
        self.graph_safe = graph_safe
        self.is_blocks = isinstance(p, blocks.BlockPlan)
        self.device = topk_ids.device
        self.num_tokens, self.topk = topk_ids.shape
        self.slots, self.num_local, self.align = self.num_tokens * self.topk, a.num_local, a.align
        self.hidden, self.cols = a.hidden, a.scale_cols
        self.fp32 = scales.dtype == torch.float32  # else packed ue8m0 in int32
        self.id64 = topk_ids.dtype == torch.int64  # int64 ids get int64 adjusted ids
        self.x_stride, (self.s_stride0, self.s_stride1) = x.stride(0), scales.stride()
        self.bins, self.tiles, self.table, self.layout = p.bins, p.tiles, p.table, p.layout
        worst = inputs.max_rows(self.slots, self.num_local, self.align)
        if self.is_blocks:
            self.tile_blocks = p.tile_blocks
            self.tile_slots = p.tile_blocks * p.block_tokens * self.topk
            self.table_runs = True
            self.grid = p.copy_programs + self.num_local + (p.tails if graph_safe else 0)
            self.layout_args = self._blocks_args
        else:
            self.tile_blocks = 0
            self.tile_slots = p.tile_tokens * self.topk
            self.table_runs = p.source != FROM_IDS or not graph_safe  # one launch reads no table
            self.grid = p.grid
            self.layout_args = self._tile_args
        self.entries = self.bins * self.tiles if self.table_runs else 0
        self.rows_cap = worst if graph_safe else None  # exact sizing: known after the host read
        at = 0  # the int32 pieces first, then rows, then m_indices and the scales (their size may vary)
        self.idx_at, at = at, _up(at + 4 * self.slots, PIECE)
        self.adj_at, at = at, _up(at + (8 if self.id64 else 4) * self.slots, PIECE)
        self.cnt_at, at = at, _up(at + 4 * self.num_local, PIECE)
        self.off_at, at = at, _up(at + 4 * (self.num_local + 1), PIECE)
        in_buffer = graph_safe and self.entries  # exact sizing reads the table from a buffer of its own
        self.tab_at = at if in_buffer else self.cnt_at  # no table: the kernel takes counts, never read
        at = _up(at + (4 * self.entries if in_buffer else 0), PIECE)
        self.rows_at = _up(at, ROWS_ALIGN)
        self.fixed_tail = self.tail(worst) if graph_safe else None  # the graph-safe sizing never changes
        self.kept_table: dict = {}  # argument class -> binary of the table launch
        self.kept_layout: dict = {}  # argument class -> binary of the layout launch

    def _tile_args(self, ids, adj, idx, tab, cnt, off, m, x, sc, rows, osc, stride, start, rows_cap):
        """``layout_kernel``'s runtime arguments, pointers as tensors or addresses."""
        return (ids, adj, idx, tab, cnt, off, m, x, self.x_stride, sc, self.s_stride0, self.s_stride1, rows,
                osc, stride, self.num_tokens, start, self.num_local, self.tiles, rows_cap)

    def _blocks_args(self, ids, adj, idx, tab, cnt, off, m, x, sc, rows, osc, stride, start, rows_cap):
        """``block_layout_kernel``'s runtime arguments, pointers as tensors or addresses."""
        return (ids, adj, idx, tab, x, self.x_stride, sc, self.s_stride0, self.s_stride1, rows, osc, stride,
                cnt, off, m, self.num_tokens, self.topk, start, self.num_local, self.tiles, self.tile_blocks,
                rows_cap, self.hidden, self.cols, self.align)

    def _table_launch(self, klass, stream, ids, ids_p, start: int, table_p: int, table) -> None:
        """The counting launch: the kept binary with addresses, else through the Launcher, whose binary is
        kept for the class then. ``table()`` gives the table as a tensor, for Triton's own path."""
        binary = self.kept_table.get(klass) if klass is not None else None
        if binary is not None:
            args = (ids_p, table_p, self.slots, start, self.num_local, self.tiles, self.tile_slots)
            launcher.run_binary(binary, self.tiles, stream, args, self.table.tail)
            return
        binary = self.table(self.tiles, ids, table(), self.slots, start, self.num_local, self.tiles,
                            self.tile_slots)
        if binary is not None and klass is not None:
            self.kept_table[klass] = binary

    def _in_buffer(self, ints) -> torch.Tensor:
        """The graph-safe mode's table, a view of the buffer (as int32), for Triton's own launch path."""
        return ints.as_strided((self.entries,), (1,), self.tab_at // 4)

    def _exact_rows(self, table: torch.Tensor) -> int:
        """The one host read of exact sizing: ``M``, the rows of the layout, from the counts table."""
        host = table.cpu()  # waits for the table launch
        if self.is_blocks:  # [tiles, bins]
            totals = host.view(self.tiles, self.bins).sum(0).tolist()
        else:  # [bins, tiles]
            totals = host.view(self.bins, self.tiles).sum(1).tolist()
        a = self.align
        return sum((c + a - 1) // a for c in totals[:self.num_local]) * a  # the local experts' bins

    def tail(self, rows_cap: int) -> tuple[int, int, int, int]:
        """``(m_at, scales_at, stride, size)`` for ``rows_cap`` rows: where ``m_indices`` and the scales
        start (bytes), the scales' column stride (elements) and the buffer's size (bytes)."""
        m_at = self.rows_at + rows_cap * self.hidden  # a multiple of 128: hidden is
        sc_at = m_at + _up(4 * rows_cap, PIECE)
        stride = inputs.aligned_stride(rows_cap)
        return m_at, sc_at, stride, _up(sc_at + 4 * self.cols * stride, PIECE)

    def buffer(self, size: int, poison) -> torch.Tensor:
        """The call's one buffer, fp8 so that ``rows`` is a plain view of it; poisoned first if asked."""
        buf = torch.empty(size, dtype=torch.float8_e4m3fn, device=self.device)
        if poison is not None:
            buf.view(torch.uint8).fill_(poison)
        return buf

    def carve(self, buf, rows_cap: int, m_at: int, sc_at: int, stride: int) -> tuple:
        """The outputs as views of ``buf``: ``(ints, index, adjusted, counts, offsets, rows, m_indices,
        scales)``, ``ints`` being ``buf`` as int32. The offsets count from the start of ``buf``'s storage:
        ``buf`` is always a fresh allocation of :meth:`buffer`."""
        ints = buf.view(torch.int32)
        shape, step = (self.num_tokens, self.topk), (self.topk, 1)
        index = ints.as_strided(shape, step, self.idx_at // 4)
        adjusted = (buf.view(torch.int64).as_strided(shape, step, self.adj_at // 8) if self.id64
                    else ints.as_strided(shape, step, self.adj_at // 4))
        counts = ints.as_strided((self.num_local,), (1,), self.cnt_at // 4)
        offsets = ints.as_strided((self.num_local + 1,), (1,), self.off_at // 4)
        rows = buf.as_strided((rows_cap, self.hidden), (self.hidden, 1), self.rows_at)
        m_indices = ints.as_strided((rows_cap,), (1,), m_at // 4)
        store = buf.view(torch.float32) if self.fp32 else ints
        scales = store.as_strided((rows_cap, self.cols), (1, stride), sc_at // 4)  # MN-major
        return ints, index, adjusted, counts, offsets, rows, m_indices, scales

    def run(self, ids, start: int, x, scales, poison) -> tuple:
        """One call on checked arguments: ``(adjusted, counts, offsets, index, m_indices, rows, scales,
        num_rows)``. ``poison``: a byte every fresh buffer is filled with first (a test hook), or None."""
        ids_p, x_p, sc_p = ids.data_ptr(), x.data_ptr(), scales.data_ptr()
        if not (ids_p and x_p and sc_p):  # a storage freed between calls of one shape (or an empty tensor)
            for name, t in (("topk_ids", ids), ("x", x), ("scales", scales)):
                check_memory(name, t)  # raises for the freed one; an empty tensor (address 0) passes
        if launcher.direct():  # compiled kernels and no launch hook: kept binaries may be called
            dev = launcher.current_device()
            stream = launcher.current_stream(dev)
            klass = (dev, ids_p % 16 == 0, x_p % 16 == 0, sc_p % 16 == 0, start == 1, start % 16 == 0)
        else:
            stream = klass = None
        if self.graph_safe:  # one buffer holds the table and every output: carved before any launch
            rows_cap = self.rows_cap
            m_at, sc_at, stride, size = self.fixed_tail
            buf = self.buffer(size, poison)
            base = buf.data_ptr()
            if klass is not None:
                klass += (base % 16 == 0,)
            views = self.carve(buf, rows_cap, m_at, sc_at, stride)
            table, table_p = None, base + self.tab_at
            if self.table_runs:
                self._table_launch(klass, stream, ids, ids_p, start, table_p,
                                   lambda: self._in_buffer(views[0]))
        else:  # exact sizing: the table first, the one host read, then the outputs' buffer
            table = torch.empty(self.entries, dtype=torch.int32, device=self.device)
            if poison is not None:
                table.view(torch.uint8).fill_(poison)
            table_p = table.data_ptr()
            if klass is not None:
                klass += (table_p % 16 == 0,)
            self._table_launch(klass, stream, ids, ids_p, start, table_p, lambda: table)
            rows_cap = self._exact_rows(table)
            m_at, sc_at, stride, size = self.tail(rows_cap)
            buf = self.buffer(size, poison)
            base = buf.data_ptr()
            if klass is not None:  # the new buffer, and the integers that vary with M
                klass += (base % 16 == 0, rows_cap == 1, rows_cap % 16 == 0, stride % 16 == 0)
            views = self.carve(buf, rows_cap, m_at, sc_at, stride)
        ints, index, adjusted, counts, offsets, rows, m_indices, out_scales = views
        binary = self.kept_layout.get(klass) if klass is not None else None
        if binary is not None:  # every pointer as its address: base + where the piece lies
            args = self.layout_args(ids_p, base + self.adj_at, base + self.idx_at, table_p,
                                    base + self.cnt_at, base + self.off_at, base + m_at, x_p, sc_p,
                                    base + self.rows_at, base + sc_at, stride, start, rows_cap)
            launcher.run_binary(binary, self.grid, stream, args, self.layout.tail)
        else:  # Triton's own path: tensors (fp8 rows travel as bytes)
            if table is None:  # graph-safe: the table in the buffer, or counts where no table is read
                table = self._in_buffer(ints) if self.entries else counts
            args = self.layout_args(ids, adjusted, index, table, counts, offsets, m_indices,
                                    x.view(torch.uint8), scales, rows.view(torch.uint8), out_scales, stride,
                                    start, rows_cap)
            binary = self.layout(self.grid, *args)
            if binary is not None and klass is not None:
                self.kept_layout[klass] = binary
        return (adjusted, counts, offsets, index, m_indices, rows, out_scales,
                None if self.graph_safe else rows_cap)


__all__ = ["CallPlan", "key", "find", "keep", "forget", "kept", "make", "MAX_PLANS"]
