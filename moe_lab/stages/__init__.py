"""One module per stage of the kernel, in the order the workbook teaches them.

Every module has a ``run(topk_ids, current_expert_start_id, num_local_experts)`` returning
``(adjusted_topk_ids, expert_count)``; its docstring says what changed from the stage before and why.
"""
