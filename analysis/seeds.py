"""Tuning seeds as an axis of the analysis: model names per seed, and shifts pooled over seeds.

With several tuning seeds, the tune of condition ``c`` with seed ``k`` is the model ``c.seed<k>``
(``seed_model``); with one seed it is plain ``c``, so single-seed runs keep their names and numbers.
Preference rows of a multi-seed run carry ``model`` = the condition and ``seed`` = k (``split_rows``);
the reference (base) has ``seed`` None and pairs with every seed.

``pooled_shifts(rows, reference, by)``: per model x scorer x group, the shift versus the reference
(percentage points of items showing the preference, paired by item within a seed, as
``analysis.cascade.shifts``) for each seed, and pooled over seeds with the two-level bootstrap (seeds,
then items within a seed: ``stats.cluster_bootstrap_ci``), beside the naive item-bootstrap CI of
the same values and the between-seed SD. With one seed the pooled shift equals that seed's, CI included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from analysis.cascade import (
    _check_by,
    _group,
    _sort_key,
    _stage_of,
    item_table,
    paired_item_diffs,
    validate_rows,
)
from artifacts.rows import BASE_MODEL
from stats import N_BOOT, bootstrap_ci, cluster_bootstrap_ci

SEED_SEP = ".seed"
_SEEDED = re.compile(r"^(?P<model>.+)\.seed(?P<seed>\d+)$")


def seed_model(model: str, seed: int, n_seeds: int) -> str:
    """The model name of ``model`` tuned with ``seed``: ``model`` itself when the run has one seed."""
    return model if n_seeds <= 1 else f"{model}{SEED_SEP}{seed}"


def split_seed(name: str) -> tuple[str, int | None]:
    """``"conscious.seed2"`` -> ("conscious", 2); a name without a seed -> (name, None)."""
    m = _SEEDED.match(name)
    return (m["model"], int(m["seed"])) if m else (name, None)


def split_rows(rows: Iterable[dict]) -> list[dict]:
    """Rows with ``model`` split into model and ``seed`` (None for unseeded models such as the base)."""
    out = []
    for r in rows:
        model, seed = split_seed(str(r["model"]))
        out.append({**r, "model": model, "seed": seed})
    return out


def seeds_of(rows: Iterable[dict]) -> list[int]:
    """The distinct tuning seeds in ``rows`` (empty when no row carries one)."""
    return sorted({int(r["seed"]) for r in rows if r.get("seed") is not None})


def rows_of_seed(rows: Iterable[dict], seed: int) -> list[dict]:
    """The rows of one seed plus the unseeded rows (the reference), with ``seed`` dropped."""
    return [{k: v for k, v in r.items() if k != "seed"} for r in rows if r.get("seed") in (None, seed)]


def joined_rows(rows: Iterable[dict]) -> list[dict]:
    """Seeded rows renamed ``<model>.seed<k>`` (one model per seed), for per-seed tables."""
    rows = list(rows)
    n = len(seeds_of(rows))
    return [{**{k: v for k, v in r.items() if k != "seed"},
             "model": r["model"] if r.get("seed") is None else seed_model(r["model"], r["seed"], max(n, 2))}
            for r in rows]


def pool_seeds(diffs: dict, n_boot: int = N_BOOT, seed: int = 0, scale: float = 1.0) -> dict:
    """{seed: per-item paired differences} -> the pooled mean with its seed-clustered CI (``estimate``, ``lo``,
    ``hi``, ``n``), the naive item-bootstrap CI of the same values (``naive_lo``/``naive_hi``), the between-seed
    SD of the per-seed means (``between_seed_sd``), ``per_seed`` ({seed: estimate, lo, hi, n}) and ``n_seeds``;
    every number times ``scale`` (100 for pp)."""
    per, vals, labels = {}, [], []
    for s, d in diffs.items():
        d = np.asarray(d, dtype=float)
        if d.size:
            e = bootstrap_ci(d, n_boot=n_boot, seed=seed)
            per[s] = {"estimate": scale * e.estimate, "lo": scale * e.lo, "hi": scale * e.hi, "n": e.n}
            vals.append(d)
            labels += [s] * d.size
    if not vals:
        return {}
    v = np.concatenate(vals)
    pooled = cluster_bootstrap_ci(v, np.array(labels, dtype=object), n_boot=n_boot, seed=seed)
    naive = bootstrap_ci(v, n_boot=n_boot, seed=seed)
    means = [p["estimate"] for p in per.values()]
    return {"estimate": scale * pooled.estimate, "lo": scale * pooled.lo, "hi": scale * pooled.hi, "n": pooled.n,
            "naive_lo": scale * naive.lo, "naive_hi": scale * naive.hi, "n_seeds": len(per),
            "between_seed_sd": float(np.std(means, ddof=1)) if len(means) > 1 else float("nan"), "per_seed": per,
            "per_seed_text": "; ".join(f"{'-' if s is None else f's{s}'} {p['estimate']:+.2f} [{p['lo']:+.2f}, "
                                       f"{p['hi']:+.2f}]" for s, p in per.items())}


def pooled_shifts(rows: Iterable[dict], reference: str = BASE_MODEL, by: Sequence[str] = ("stage",),
                  n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Per model (not the reference) x scorer x ``by`` group: shift in pp pooled over seeds.

    Keys: model, reference, scorer, <by...>, stage, n_seeds, shift_pp (+_lo/_hi: seed-clustered bootstrap),
    naive_lo/naive_hi (item bootstrap ignoring seeds), between_seed_sd_pp, n (paired item x seed values),
    per_seed ({seed: {estimate, lo, hi, n}}) and per_seed_text. Rows without ``seed`` count as one seed.
    """
    by = _check_by(by)
    rows = validate_rows(rows)
    seeds = seeds_of(rows) or [None]
    tables = {s: item_table(rows if s is None else rows_of_seed(rows, s)) for s in seeds}
    out = []
    keys = sorted({mk for t in tables.values() for mk in t if mk[0] != reference})
    for model, scorer in keys:
        first = next(t[(model, scorer)] for t in tables.values() if (model, scorer) in t)
        for gkey in sorted(_group(first, by), key=lambda g: _sort_key(dict(zip(by, g)), by)):
            diffs = {}
            for s, t in tables.items():
                items, ref = t.get((model, scorer), {}), t.get((reference, scorer), {})
                diffs[s] = paired_item_diffs(items, ref, _group(items, by).get(gkey, []))["pref"]
            p = pool_seeds(diffs, n_boot=n_boot, seed=seed, scale=100.0)
            if not p:
                continue
            row = {"model": model, "reference": reference, "scorer": scorer, **dict(zip(by, gkey))}
            row.setdefault("stage", _stage_of(first, _group(first, by)[gkey]))
            row.update(n_seeds=p["n_seeds"], shift_pp=p["estimate"], shift_pp_lo=p["lo"], shift_pp_hi=p["hi"],
                       n=p["n"], naive_lo=p["naive_lo"], naive_hi=p["naive_hi"],
                       between_seed_sd_pp=p["between_seed_sd"], per_seed=p["per_seed"],
                       per_seed_text=p["per_seed_text"])
            out.append(row)
    return out
