"""Token-budget batching: rows ordered by length, packed under a token budget and a row cap.

``plan_batches(lengths, batch_size, token_budget)`` returns lists of input-row indices, one per
batch: rows sorted by length (longest first, so an out-of-memory batch shows at once; ties keep input
order), each batch at most ``batch_size`` rows and at most ``token_budget`` padded tokens (rows x
longest row; a single row longer than the budget still forms its own batch). Callers write each
batch's results back at its indices, so outputs stay in input order. Without a budget and with
``sort=False`` it is plain contiguous batching.

``notify(before_batch, rows)``: the ``before_batch`` contract of the scorers. A batch of contiguous
ascending rows calls ``before_batch(lo, hi)``; any other batch calls ``before_batch(rows)`` with the
input-row index of every batch row, in batch order (``steering.interventions.Intervention.before_batch``
takes both forms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def plan_batches(lengths: Sequence[int], batch_size: int, token_budget: int | None = None,
                 sort: bool = True) -> list[list[int]]:
    """Lists of row indices, one per batch (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if token_budget is not None and token_budget < 1:
        raise ValueError(f"token_budget must be >= 1 (or None for no budget), got {token_budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i)) if sort else range(len(lengths))
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = int(lengths[i])
        grown = max(longest, n)
        if cur and (len(cur) >= batch_size or (token_budget is not None and grown * (len(cur) + 1) > token_budget)):
            batches.append(cur)
            cur, grown = [], n
        cur.append(i)
        longest = grown
    if cur:
        batches.append(cur)
    return batches


def notify(before_batch: Callable[..., None] | None, rows: Sequence[int]) -> None:
    """Call ``before_batch(lo, hi)`` for a contiguous ascending batch, else ``before_batch(rows)``."""
    if before_batch is None:
        return
    rows = [int(r) for r in rows]
    if rows and rows == list(range(rows[0], rows[0] + len(rows))):
        before_batch(rows[0], rows[0] + len(rows))
    else:
        before_batch(rows)
