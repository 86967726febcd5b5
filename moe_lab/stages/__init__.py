"""One module per stage of the kernel, in the order the workbook teaches them.

Every module has a ``run(topk_ids, start, num_local)`` returning
``(adjusted_topk_ids, expert_count)``; its docstring says what changed from the stage before and why.
"""
