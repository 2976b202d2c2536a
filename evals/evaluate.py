"""``evaluate``: score items with several scorers for one loaded model under one condition, resumably.

Rows already in ``out`` for the same model spec, condition, scorer, item (and ``extra`` values) are
not scored again; new rows are added in chunks and the file is rewritten atomically after each chunk,
so an interrupted run loses at most one chunk and never leaves a corrupt table.

Usage (steering): ``with add(loaded, direction, layers, dose): evaluate(loaded, items, ["continuation"],
condition=f"self_model@{dose}", extra={"alpha": dose}, out=path)``. For different doses in different
rows of one batch call the scorers directly with ``before_batch`` (see ``evals.scorers``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tqdm.auto import tqdm

from evals.items import Item
from evals.results import read_results, write_results
from evals.scorers import SCORERS, applicable, score
from models import LoadedModel


def spec_columns(loaded: LoadedModel) -> dict[str, str]:
    spec = loaded.spec
    return {"model": spec.slug, "adapter": spec.adapter or "", "base": spec.base}


def _key(row: dict[str, Any], extra_keys: Sequence[str]) -> tuple:
    return (str(row.get("model", "")), str(row.get("condition", "")), str(row["scorer"]), str(row["item_id"]),
            *(str(row.get(k, "")) for k in extra_keys))


def evaluate(loaded: LoadedModel, items: Sequence[Item], scorers: Sequence[str] = ("continuation",),
             condition: str = "base", out: str | os.PathLike | None = None, batch_size: int = 8,
             judge: Any = None, extra: dict[str, Any] | None = None, chunk_size: int = 64,
             progress: bool = True, token_budget: int | None = None, **scorer_kw: Any) -> list[dict[str, Any]]:
    """Score ``items`` with each scorer (each on the item kinds it takes); return this call's rows
    (those found in ``out`` included). ``extra`` columns (e.g. ``{"alpha": 2.0}``) go into every row."""
    bad = [s for s in scorers if s not in SCORERS]
    if bad:
        raise ValueError(f"unknown scorer(s) {bad}; use {', '.join(SCORERS)}")
    extra = dict(extra or {})
    ekeys = sorted(extra)
    head = {**spec_columns(loaded), "condition": condition}
    table = read_results(out) if out is not None else []
    have = {_key(r, ekeys): r for r in table}
    plan, wanted = [], set()
    for s in scorers:
        keys = [(_key({**head, **extra, "scorer": s, "item_id": it.id}, ekeys), it) for it in applicable(items, s)]
        wanted.update(k for k, _ in keys)
        plan.append((s, [it for k, it in keys if k not in have]))
    result = [r for r in table if _key(r, ekeys) in wanted]
    total = sum(len(t) for _, t in plan)
    bar = tqdm(total=total, desc=f"eval {head['model']} [{condition}]", unit="item", disable=not progress)
    for s, todo in plan:
        bar.set_postfix_str(s)
        for c0 in range(0, len(todo), chunk_size):
            chunk = todo[c0:c0 + chunk_size]
            rows = [{**head, **r, **extra} for r in score(s, loaded, chunk, batch_size, judge=judge, token_budget=token_budget, **(
                scorer_kw if s == "judged" else {}))]
            result.extend(rows)
            table.extend(rows)
            if out is not None:
                write_results(out, table)
            bar.update(len(chunk))
    bar.close()
    return result
