"""moe-lab: the MoE top-k id recombination kernel of expert-parallel inference, stage by stage.

``import moe_lab`` first chooses where Triton kernels run (GPU, or the interpreter on CPU; see
:mod:`moe_lab.backend`), so that learners never have to set ``TRITON_INTERPRET`` themselves.
"""

from . import backend  # noqa: F401  (must come before any kernel module imports triton.jit)
from . import routing, verify  # noqa: F401  (public submodules: moe_lab.routing, moe_lab.verify)
from .registry import STAGES, list_stages, stage

__version__ = "0.1.0"


def recombine(topk_ids, start, num_local, variant: str = "best"):
    """Run one stage by name: ``(adjusted_topk_ids, expert_count)``. See :func:`list_stages`."""
    return stage(variant).run(topk_ids, start, num_local)


def recompute_topk_ids_sum_expert_count(topk_ids, current_expert_start_id, num_local_experts):
    """Drop-in for rtp-llm's function of the same name: ``(adjusted_topk_ids, expert_count)``.

    ``adjusted_topk_ids`` has the shape and dtype of ``topk_ids`` (int32 or int64): ``id - start`` for
    the experts this rank owns, ``-1`` elsewhere (padding and remote ids). ``expert_count`` is int32
    ``[num_local_experts]`` on the same device. Uses the fastest stage, ``best``.
    """
    return recombine(topk_ids, current_expert_start_id, num_local_experts, variant="best")


__all__ = ["recombine", "recompute_topk_ids_sum_expert_count", "STAGES", "list_stages", "stage",
           "backend", "routing", "verify", "__version__"]
