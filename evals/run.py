"""Evaluate several model specs (base and tunes) into one results table, with summaries, paired
comparisons against the base, charts and a manifest. Used by ``scripts/eval_preferences.py`` and the
pipeline's evals stage.

Rows carry ``model`` = the name given to each spec (``base``, ``conscious``, ...; the score-row schema of
``artifacts.rows``): that is the label summaries, comparisons and charts group by.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from artifacts import (
    SelfModelError,
    atomic_write_json,
    atomic_write_text,
    claim_folder,
    folder_lock,
    hash_jsonable,
    write_manifest,
)
from artifacts.rows import BASE_MODEL
from evals.audit import audit_items
from evals.evaluate import evaluate
from evals.items import Item
from evals.plots import plot_dimensions
from evals.results import RESULTS_CSV, compare, read_results, summarize, to_csv
from models import ModelSpec
from models.adapters import each_model
from models.provenance import model_provenance, spec_hash

KIND = "evals"
ITEM_AUDIT_JSON = "item_audit.json"  # polarity audit of the items
AGREEMENT_CSV = "agreement.csv"  # cheap scorers vs the judge (with the judged scorer only)


def preferences_png(scorer: str) -> str:
    """The chart of one scorer's preferences per dimension (``"*"``: the glob of all of them)."""
    return f"preferences_{scorer}.png"


def compare_csv(model: str, reference: str) -> str:
    """The paired comparison of one model against the reference, per dimension and stage."""
    return f"compare_{model}_vs_{reference}.csv"


def evaluate_models(specs: dict[str, ModelSpec], items: Sequence[Item], scorers: Sequence[str],
                    out: str | os.PathLike, batch_size: int = 8, judge: Any = None, reference: str | None = BASE_MODEL,
                    params: dict[str, Any] | None = None, **scorer_kw: Any) -> dict[str, Any]:
    """Score every spec (resumable: rows already in ``out/results.csv`` of the same model content are kept)
    and write summaries. ``out`` is locked for the run and must not hold another kind of artifact."""
    out = Path(out)
    with folder_lock(out):
        claim_folder(out, KIND)
        return _evaluate_models(specs, items, scorers, out, batch_size, judge, reference, params, **scorer_kw)


def _evaluate_models(specs: dict[str, ModelSpec], items: Sequence[Item], scorers: Sequence[str], out: Path,
                     batch_size: int, judge: Any, reference: str | None, params: dict[str, Any] | None,
                     **scorer_kw: Any) -> dict[str, Any]:
    results = out / RESULTS_CSV
    hashes = {name: spec_hash(spec) for name, spec in specs.items()}
    tokenizer = None
    for name, loaded in each_model(specs):  # one base in memory, each spec's adapter selected in turn
        tokenizer = loaded.tokenizer if tokenizer is None else tokenizer
        evaluate(loaded, items, scorers, condition=name, out=results, batch_size=batch_size, judge=judge,
                 **scorer_kw)
    names, ids = set(specs), {it.id for it in items}
    rows = [r for r in read_results(results) if r["model"] in names and r["item"] in ids
            and r.get("spec_sha256") == hashes[r["model"]]]
    summ = summarize(rows, by=("model", "scorer", "dimension"))
    atomic_write_text(out / "summary_dimensions.csv", to_csv(summ))
    atomic_write_text(out / "summary_stages.csv", to_csv(summarize(rows, by=("model", "scorer", "stage"))))
    compared = []
    if reference in specs:
        for name in specs:
            if name != reference:
                cmp_rows = compare(rows, name, reference) + compare(rows, name, reference, by="stage")
                atomic_write_text(out / compare_csv(name, reference), to_csv(cmp_rows))
                compared.append(name)
    atomic_write_json(out / ITEM_AUDIT_JSON, {"rows": audit_items(items, tokenizer)})  # polarity audit
    for sc in scorers:
        plot_dimensions(summ, out / preferences_png(sc), sc, group="model")
    outputs = {}
    if "judged" in scorers:  # do the cheap scorers rank the models as the judge does?
        from evals.agreement import agreement

        atomic_write_text(out / AGREEMENT_CSV, to_csv(agreement(rows, unit="model")))
        outputs["agreement"] = AGREEMENT_CSV
    write_manifest(out, "evals", inputs={"items_sha256": hash_jsonable(list(items)),
                                         "models": {n: model_provenance(s) for n, s in specs.items()}},
                   params={"scorers": list(scorers), "batch_size": batch_size, **(params or {})},
                   outputs={"results": RESULTS_CSV, "n_rows": len(rows), "item_audit": ITEM_AUDIT_JSON, **outputs})
    return {"n_rows": len(rows), "n_items": len(items), "models": list(specs), "compared": compared,
            "results": str(results), "summary": summ}


def cap_items(items: Sequence[Item], k: int) -> list[Item]:
    """At most ``k`` items per (dimension, kind), in file order (``k`` <= 0: all)."""
    if k <= 0:
        return list(items)
    seen: dict[tuple, int] = {}
    out = []
    for it in items:
        key = (it.dimension, it.kind)
        if seen.get(key, 0) < k:
            out.append(it)
            seen[key] = seen.get(key, 0) + 1
    return out


def load_specs(base: ModelSpec, adapters: Sequence[str], include_base: bool = True) -> dict[str, ModelSpec]:
    """{name: spec} from ``NAME=DIR`` adapter arguments (clear errors for bad ones)."""
    specs = {BASE_MODEL: base} if include_base else {}
    for a in adapters:
        name, sep, path = a.partition("=")
        if not sep or not path:
            raise SelfModelError(f"--adapter {a!r}: expected NAME=DIR")
        if not Path(path).is_dir():
            raise SelfModelError(f"--adapter {a!r}: directory {path} not found")
        specs[name] = base.with_adapter(path)
    if not specs:
        raise SelfModelError("nothing to evaluate: drop --no-base or pass --adapter NAME=DIR")
    return specs
