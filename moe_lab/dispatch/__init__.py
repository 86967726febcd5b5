"""From recombination to dispatch: the contiguous grouped-GEMM layout of a rank's slots.

* :func:`prepare_dispatch` (:mod:`.op`): the fused op, one or two launches, deterministic, no state kept;
* :func:`prepare_dispatch_reference` (:mod:`.reference`): its contract in plain PyTorch;
* :mod:`.chain`: the multi-step path it replaces (rtp-llm's kernels: a host round trip, an atomic scatter);
* ``python -m moe_lab.measure.dispatch_bench``: the GPU benchmark of the three.
"""

from moe_lab.dispatch.op import DispatchLayout, prepare_dispatch
from moe_lab.dispatch.reference import prepare_dispatch_reference

__all__ = ["DispatchLayout", "prepare_dispatch", "prepare_dispatch_reference"]
