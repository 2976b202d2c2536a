"""``evaluate``: score items with several scorers for one loaded model, named ``condition`` in the run, resumably.

Rows are in the score-row schema (``artifacts.rows``): ``model`` = ``condition`` (the run's name of the model:
``base``, ``conscious``, ...), ``arm`` = ``none``, ``dose`` = 0, ``layer`` = None; the spec's slug is ``spec``.
Rows already in ``out`` for the same model content (``spec_sha256``: base weights + adapter files, never a
folder name), model name, scorer, item (and ``extra`` values) are not scored again; new rows are added in
chunks and the file is rewritten atomically after each chunk, so an interrupted run loses at most one
chunk and never leaves a corrupt table. Rows of the same model name scored with another model are never
reused: ``evaluate`` refuses the table (``ResumeError``). The table is an ``artifacts.store.ResultStore`` (table
layout): the folder of ``out`` is locked while it writes.

Usage (steering): ``with add(loaded, direction, layers, dose): evaluate(loaded, items, ["continuation"],
condition="base", extra={"arm": "self_model", "dose": dose}, out=path)`` (``extra`` columns override the
schema's defaults and are part of each row's key). For different doses in different rows of one batch call the
scorers directly with ``before_batch`` (see ``evals.scorers``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from artifacts import ResumeError, SelfModelError
from artifacts.rows import BASE_MODEL, NO_ARM, SCORE_COLUMNS
from artifacts.store import ResultStore
from evals.items import Item
from evals.results import RESULTS_CSV, read_results, to_csv
from evals.scorers import SCORERS, applicable, score
from models import LoadedModel
from models.provenance import spec_hash


def spec_columns(loaded: LoadedModel) -> dict[str, str]:
    spec = loaded.spec
    return {"spec": spec.slug, "adapter": spec.adapter or "", "base": spec.base, "spec_sha256": spec_hash(spec)}


def _key(row: dict[str, Any], extra_keys: Sequence[str]) -> tuple:
    return (str(row.get("spec_sha256", "")), str(row.get("model", "")), str(row["scorer"]),
            str(row["item"]), *(str(row.get(k, "")) for k in extra_keys))


def _refuse_stale(out: Any, table: list[dict[str, Any]], head: dict[str, Any], extra: dict[str, Any]) -> None:
    """A ``ResumeError`` when ``table`` holds rows of this model name (and extras) from another model."""
    same = [r for r in table if str(r.get("model", "")) == str(head["model"])
            and all(str(r.get(k, "")) == str(v) for k, v in extra.items())]
    stale = [r for r in same if str(r.get("spec_sha256", "")) != head["spec_sha256"]]
    if stale:
        other = str(stale[0].get("spec_sha256", "")) or "none recorded"
        raise ResumeError(f"{out}: holds {len(stale)} rows of model {head['model']!r} scored with another "
                          f"model (weights+adapter hash {other[:12]}, this model {head['spec_sha256'][:12]}); "
                          "they are never reused: pass a new output folder, or delete that file to re-score")


def _row(head: dict[str, Any], scored: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A scorer's row in the schema: the model's columns, the scored columns, then extras."""
    return {**{k: head[k] for k in ("model", "arm", "dose", "layer")}, **{k: scored[k] for k in SCORE_COLUMNS
            if k in scored}, **{k: v for k, v in head.items() if k not in SCORE_COLUMNS}, **scored, **extra}


def _regrade(row: dict[str, Any]) -> bool:
    """A judged row some of whose answers the judge could not grade (failed call, malformed reply)."""
    try:
        return row.get("scorer") == "judged" and float(row.get("n_errors") or 0) > 0
    except (TypeError, ValueError):
        return False


def evaluate(loaded: LoadedModel, items: Sequence[Item], scorers: Sequence[str] = ("continuation",),
             condition: str = BASE_MODEL, out: str | os.PathLike | None = None, batch_size: int = 8,
             judge: Any = None, extra: dict[str, Any] | None = None, chunk_size: int = 64,
             progress: bool = True, token_budget: int | None = None, **scorer_kw: Any) -> list[dict[str, Any]]:
    """Score ``items`` with each scorer (each on the item kinds it takes); return this call's rows
    (those found in ``out`` included). ``extra`` columns (e.g. ``{"run": 1}``) go into every row."""
    bad = [s for s in scorers if s not in SCORERS]
    if bad:
        raise SelfModelError(f"unknown scorer(s) {bad}; use {', '.join(SCORERS)}")
    for name, v in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SelfModelError(f"{name} is {v!r}; it must be a positive integer")
    extra = dict(extra or {})
    head = {"model": condition, "arm": NO_ARM, "dose": 0.0, "layer": None, **spec_columns(loaded)}
    ekeys = sorted(extra)
    folder, table = (None, RESULTS_CSV) if out is None else (Path(out).parent, Path(out).name)
    with ResultStore(folder, table=table, key=lambda r: _key(r, ekeys), dump=to_csv, load=read_results) as store:
        return _evaluate(loaded, items, scorers, head, extra, store, out, batch_size, judge, chunk_size, progress,
                         {**scorer_kw, "token_budget": token_budget})


def _evaluate(loaded: LoadedModel, items: Sequence[Item], scorers: Sequence[str], head: dict[str, Any],
              extra: dict[str, Any], store: ResultStore, out: Any, batch_size: int, judge: Any, chunk_size: int,
              progress: bool, scorer_kw: dict[str, Any]) -> list[dict[str, Any]]:
    name, ekeys = head["model"], sorted(extra)
    kw = dict(scorer_kw)
    budget = kw.pop("token_budget", None)
    _refuse_stale(out, store.rows(), head, extra)
    todo = [(s, [(_key({**head, **extra, "scorer": s, "item": it.id}, ekeys), it) for it in applicable(items, s)])
            for s in scorers]
    wanted = {k for _, keys in todo for k, _ in keys}
    store.drop(lambda r: _regrade(r) and _key(r, ekeys) in wanted)  # ungraded judged rows are scored again
    plan = [(s, [it for k, it in keys if not store.done(k)]) for s, keys in todo]
    result = [r for r in store.rows() if _key(r, ekeys) in wanted]
    total = sum(len(t) for _, t in plan)
    bar = tqdm(total=total, desc=f"eval {head['spec']} [{name}]", unit="item", disable=not progress)
    for s, pending in plan:
        bar.set_postfix_str(s)
        for c0 in range(0, len(pending), chunk_size):
            chunk = pending[c0:c0 + chunk_size]
            rows = [_row(head, r, extra) for r in score(s, loaded, chunk, batch_size, judge=judge, token_budget=budget,
                                                        **(kw if s == "judged" else {}))]
            result.extend(rows)
            store.write(rows)
            bar.update(len(chunk))
    bar.close()
    return result
