"""moe-lab: the MoE top-k id recombination kernel of expert-parallel inference, stage by stage.

``import moe_lab`` first chooses where Triton kernels run (GPU, or the interpreter on CPU; see
:mod:`moe_lab.backend`), so that learners never have to set ``TRITON_INTERPRET`` themselves.
"""

from moe_lab import backend  # noqa: F401, I001  (must come before any kernel module imports triton.jit)
from moe_lab import routing, verify  # noqa: F401  (public submodules: moe_lab.routing, moe_lab.verify)
from moe_lab.registry import STAGES, list_stages, stage
from moe_lab.registry import stage as _stage

__version__ = "0.1.0"


def recombine(topk_ids, start, num_local, stage: str = "best"):
    """Run one stage by name: ``(adjusted_topk_ids, expert_count)``. See :func:`list_stages`."""
    return _stage(stage).run(topk_ids, start, num_local)


_BEST: list = []  # [best's run], looked up in the registry on the first call (after the backend is chosen)


def _best_run():
    _BEST.append(_stage("best").load().run)
    return _BEST[0]


def recompute_topk_ids_sum_expert_count(topk_ids, current_expert_start_id, num_local_experts):
    """Drop-in for rtp-llm's function of the same name: ``(adjusted_topk_ids, expert_count)``.

    ``adjusted_topk_ids`` has the shape and dtype of ``topk_ids`` (int32 or int64): ``id - start`` for
    the experts this rank owns, ``-1`` elsewhere (padding and remote ids). ``expert_count`` is int32
    ``[num_local_experts]`` on the same device. Runs the fastest stage, ``best``.

    Example: rank 1 of 4 owning experts 4..7 (``current_expert_start_id=4, num_local_experts=4``)::

        topk_ids           [[ 5, 0], [ 7, 4], [-1, 6], [ 9, 5]]
        adjusted_topk_ids  [[ 1,-1], [ 3, 0], [-1, 2], [-1, 1]]
        expert_count       [1, 2, 1, 1]        # experts 4, 5, 6, 7

    Safe to call from several threads, on several streams or devices at once, inside CUDA graphs
    (also replayed concurrently on different streams), and after a call that was interrupted: no
    call's result depends on another call (see ``moe_lab.stages.one_launch.scratch`` for why).
    """
    run = _BEST[0] if _BEST else _best_run()
    try:
        return run(topk_ids, current_expert_start_id, num_local_experts)
    except (TypeError, ValueError):
        from moe_lab.checks import DROP_IN_NAMES, check_args

        try:  # the same complaint, naming rtp-llm's arguments (checked again only on the error path)
            check_args(topk_ids, current_expert_start_id, num_local_experts, stage="best",
                       names=DROP_IN_NAMES)
        except (TypeError, ValueError) as named:
            raise named from None
        raise


__all__ = ["recombine", "recompute_topk_ids_sum_expert_count", "STAGES", "list_stages", "stage",
           "backend", "routing", "verify", "__version__"]
