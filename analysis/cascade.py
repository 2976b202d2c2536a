"""Cascade summary: preference rates and shifts versus a reference model, per dimension and per stage.

Input: preference result rows (one per scored item, from ``evals``), plain dicts with at least
``model``, ``scorer``, ``dimension``, ``stage``, ``item_id`` (or the schema's ``item``), ``value`` and optionally
``kind``. ``unit`` names the column that tells the compared things apart: ``model`` (evals rows: tunes vs the base)
or ``arm`` (steering rows of ``artifacts.rows``: arms vs the ``none`` arm). An optional ``replicate`` column (e.g.
the random direction of a pooled ``random`` arm) makes each (item, replicate) a unit of its own that pairs with
the reference's item.

Indicator rule ("the item shows the preference"), per scorer (``INDICATOR_RULES``):
- ``continuation``: ``value > 0`` (log-likelihood difference pref - rej: the preference answer is the
  more likely one);
- ``choice``: ``value > 0.5`` (the preference option has more than half the probability);
- ``judged``: ``value == 1`` (the judge said the answer shows the preference).
A NaN value is dropped. Several rows for one (model, scorer, dimension, item_id), e.g. the two answer
orders of a choice item, are averaged first (value and indicator), so one item counts once.

Rates are in percent with a Wilson 95% CI; shifts are model minus reference in percentage points,
paired by item (``dimension``, ``item_id``) with a bootstrap 95% CI over items, plus the mean raw score
shift (model minus reference, the scorer's own units) with its paired bootstrap CI. A stage pools the
items of its dimensions (every item weighs the same). Sign convention: higher = more of the preference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from artifacts import InputError
from artifacts.rows import BASE_MODEL
from stats import bootstrap_ci, wilson_ci
from stats.effects import add_q, paired_effects, paired_values

REQUIRED_FIELDS = ("model", "scorer", "dimension", "stage", "item_id", "value")  # model: the ``unit`` column
INDICATOR_RULES = {
    "continuation": "value > 0 (preference answer more likely than the rejecting one)",
    "choice": "value > 0.5 (preference option more probable)",
    "judged": "value == 1 (judge: shows the preference)",
}
GROUP_KEYS = ("dimension", "stage", "kind")


def shows_preference(scorer: str, value: float) -> float:
    """1.0 if an item's value shows the preference under ``scorer``'s rule, 0.0 if not, NaN if no value."""
    v = float(value)
    if math.isnan(v):
        return float("nan")
    if scorer == "continuation":
        return float(v > 0)
    if scorer == "choice":
        return float(v > 0.5)
    if scorer == "judged":
        return float(v == 1)
    raise InputError(f"unknown scorer {scorer!r}; expected one of {sorted(INDICATOR_RULES)}")


def _item_of(r: dict):
    return r["item_id"] if r.get("item_id") is not None else r.get("item")


def validate_rows(rows: Iterable[dict], where: str = "preference results", unit: str = "model") -> list[dict]:
    """Check the fields every analysis needs; return the rows as a list. Errors name the row and field."""
    rows = list(rows)
    need = tuple(unit if f == "model" else f for f in REQUIRED_FIELDS)
    if not rows:
        raise InputError(f"{where}: no rows; expected one dict per scored item with fields {need}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise InputError(f"{where}: row {i} is a {type(r).__name__}; expected a dict")
        for f in need:
            if (_item_of(r) if f == "item_id" else r.get(f)) is None:
                raise InputError(f"{where}: row {i} has no field {f!r}; every row needs {need}")
        if r["scorer"] not in INDICATOR_RULES:
            raise InputError(f"{where}: row {i}: field 'scorer' is {r['scorer']!r}; expected one of "
                             f"{sorted(INDICATOR_RULES)}")
        try:
            float(r["value"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: row {i}: field 'value' is {r['value']!r}; expected a number "
                             "(higher = more of the preference)") from exc
        try:
            if int(r["stage"]) not in (1, 2, 3):
                raise ValueError
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: row {i}: field 'stage' is {r['stage']!r}; expected 1, 2 or 3") from exc
    return rows


def item_table(rows: Iterable[dict], unit: str = "model") -> dict[tuple[str, str], dict[tuple, dict]]:
    """``{(model, scorer): {(dimension, item_id[, replicate]): {"stage", "kind", "value", "pref"}}}``, duplicates
    averaged (``model``: the ``unit`` column's value)."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    meta: dict = {}
    for r in validate_rows(rows, unit=unit):
        v = float(r["value"])
        if math.isnan(v):
            continue
        mk, ik = (str(r[unit]), str(r["scorer"])), (str(r["dimension"]), str(_item_of(r)))
        if r.get("replicate") is not None:
            ik = (*ik, str(r["replicate"]))
        acc[mk][ik].append((v, shows_preference(r["scorer"], v)))
        meta[(mk, ik)] = (int(r["stage"]), str(r.get("kind") or "unknown"))
    out: dict = {}
    for mk, items in acc.items():
        out[mk] = {}
        for ik, vals in items.items():
            arr = np.asarray(vals, dtype=float)
            stage, kind = meta[(mk, ik)]
            out[mk][ik] = {"dimension": ik[0], "item_id": ik[1], "stage": stage, "kind": kind,
                           "value": float(arr[:, 0].mean()), "pref": float(arr[:, 1].mean())}
    return out


def _check_by(by: Sequence[str]) -> tuple[str, ...]:
    by = (by,) if isinstance(by, str) else tuple(by)
    bad = [b for b in by if b not in GROUP_KEYS]
    if bad:
        raise ValueError(f"cannot group by {bad}; choose from {GROUP_KEYS}")
    return by


def _group(items: dict, by: tuple[str, ...]) -> dict[tuple, list]:
    groups: dict = defaultdict(list)
    for ik, it in items.items():
        groups[tuple(it[b] for b in by)].append(ik)
    return groups


def _sort_key(row: dict, by: tuple[str, ...]):
    return tuple((0, row[b], "") if isinstance(row[b], int) else (1, 0, str(row[b])) for b in by)


def _stage_of(items: dict, keys: list) -> int | None:
    stages = {items[k]["stage"] for k in keys}
    return stages.pop() if len(stages) == 1 else None


def preference_rates(rows: Iterable[dict], by: Sequence[str] = ("dimension",), n_boot: int = 2000,
                     seed: int = 0, unit: str = "model") -> list[dict]:
    """Per model x scorer x ``by`` group: preference rate (percent, Wilson CI) and mean raw value (bootstrap CI).

    Keys: <unit>, scorer, <by...>, stage, rate_pct, rate_pct_lo, rate_pct_hi, k, n, mean_value,
    mean_value_lo, mean_value_hi. ``k`` can be fractional when duplicate rows of an item disagree.
    """
    by = _check_by(by)
    out = []
    for (model, scorer), items in item_table(rows, unit).items():
        for gkey, keys in _group(items, by).items():
            prefs = np.array([items[k]["pref"] for k in keys])
            vals = np.array([items[k]["value"] for k in keys])
            w = wilson_ci(float(prefs.sum()), len(prefs))
            m = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
            row = {unit: model, "scorer": scorer, **dict(zip(by, gkey))}
            row.setdefault("stage", _stage_of(items, keys))
            row.update(rate_pct=100 * w.estimate, rate_pct_lo=100 * w.lo, rate_pct_hi=100 * w.hi,
                       k=float(prefs.sum()), n=len(prefs), mean_value=m.estimate, mean_value_lo=m.lo,
                       mean_value_hi=m.hi)
            out.append(row)
    out.sort(key=lambda r: (r[unit], r["scorer"], *_sort_key(r, by)))
    return out


def _item_frame(items: dict, side: str, groups_of: dict | None = None) -> pd.DataFrame:
    """One row per item of an ``item_table`` entry (in its order): side, dimension, item, replicate, value, pref,
    stage, kind
    (stage and kind taken from ``groups_of`` where it has the item, so both sides of a pair share a group)."""
    cols = ["side", "dimension", "item", "replicate", "value", "pref", "stage", "kind"]
    return pd.DataFrame([{"side": side, "dimension": k[0], "item": k[1], "replicate": k[2] if len(k) > 2 else "",
                          "value": it["value"], "pref": it["pref"],
                          "stage": (groups_of or {}).get(k, it)["stage"],
                          "kind": (groups_of or {}).get(k, it)["kind"]}
                         for k, it in items.items()], columns=cols)


def paired_item_diffs(items: dict, ref_items: dict, keys: Iterable | None = None) -> dict:
    """Paired differences model - reference over the items both have (in ``keys`` order; ``stats.effects``):
    ``pref`` (0/1 scale) and ``value``."""
    keys = list(items) if keys is None else list(keys)
    df = pd.concat([_item_frame({k: items[k] for k in keys}, "a"), _item_frame(ref_items, "b")], ignore_index=True)
    out = {}
    for v in ("pref", "value"):
        pv = paired_values(df, {"side": "a"}, {"side": "b"}, pair_on=("dimension", "item"), value=v, order="a")
        out[v] = (pv["a"] - pv["b"]).to_numpy(dtype=float)
    return {"keys": list(zip(pv["dimension"], pv["item"])), "n_unpaired": len(keys) - len(pv), **out}


def shifts(rows: Iterable[dict], reference: str = BASE_MODEL, by: Sequence[str] = ("dimension",),
           models: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0, n_perm: int = 5000,
           unit: str = "model") -> list[dict]:
    """Per model (not the reference) x scorer x ``by`` group: shift versus ``reference``, paired by item
    (``stats.effects.paired_effects``, items in the model's row order).

    Keys: <unit>, reference, scorer, <by...>, stage, shift_pp (+_lo/_hi), n (paired items), n_unpaired
    (items of the model without a reference row, left out), score_shift (+_lo/_hi; the scorer's units),
    p_value (two-sided sign-flip permutation test of the pp shift) and q_value (Benjamini-Hochberg over
    the groups of one model x scorer).
    """
    by = _check_by(by)
    table = item_table(rows, unit)
    present = sorted({m for m, _ in table})
    if reference not in present:
        raise InputError(f"preference results: no rows for reference {unit} {reference!r}; present: "
                         f"{present}. Pass reference= one of them.")
    out = []
    for (model, scorer), items in sorted(table.items()):
        if model == reference or (models is not None and model not in models):
            continue
        df = pd.concat([_item_frame(items, "a"), _item_frame(table.get((reference, scorer), {}), "b", items)],
                       ignore_index=True)
        kw = {"by": list(by), "pair_on": ("dimension", "item"), "units": ("replicate",), "order": "a",
              "n_boot": n_boot, "seed": seed, "keep_empty": True}
        pp = paired_effects(df, [{"a": {"side": "a"}, "b": {"side": "b"}}], value="pref", n_perm=n_perm, **kw)
        raw = paired_effects(df, [{"a": {"side": "a"}, "b": {"side": "b"}}], value="value", **kw)
        pp = add_q(pp, [])  # one family: the groups of this model x scorer
        groups = _group(items, by)
        fam = []
        for s, v in zip(pp.to_dict("records"), raw.to_dict("records")):
            gkey = tuple(s[b] for b in by)
            row = {unit: model, "reference": reference, "scorer": scorer, **dict(zip(by, gkey))}
            row.setdefault("stage", _stage_of(items, groups[gkey]))
            row.update(shift_pp=100 * s["estimate"], shift_pp_lo=100 * s["lo"], shift_pp_hi=100 * s["hi"],
                       n=s["n"], n_unpaired=s["n_unpaired"], score_shift=v["estimate"], score_shift_lo=v["lo"],
                       score_shift_hi=v["hi"], p_value=s["p"], q_value=float(s["q"]))
            fam.append(row)
        out.extend(sorted(fam, key=lambda r: _sort_key(r, by)))
    return out


def _summary(rows, reference, by, n_boot, seed, unit="model") -> list[dict]:
    rows = validate_rows(rows, unit=unit)
    rates = preference_rates(rows, by=by, n_boot=n_boot, seed=seed, unit=unit)
    sh = {(r[unit], r["scorer"], *(r[b] for b in by)): r
          for r in shifts(rows, reference=reference, by=by, n_boot=n_boot, seed=seed, unit=unit)}
    out = []
    for r in rates:
        s = sh.get((r[unit], r["scorer"], *(r[b] for b in by)))
        row = dict(r)
        row["reference"] = reference
        for k in ("shift_pp", "shift_pp_lo", "shift_pp_hi", "score_shift", "score_shift_lo", "score_shift_hi",
                  "p_value", "q_value"):
            row[k] = s[k] if s else float("nan")
        row["n_paired"] = row["shift_pp_n"] = row["score_shift_n"] = s["n"] if s else 0
        out.append(row)
    return out


def stage_summary(rows: Iterable[dict], reference: str = BASE_MODEL, n_boot: int = 2000, seed: int = 0,
                  unit: str = "model") -> list[dict]:
    """Per model (``unit``) x scorer x stage: rate (Wilson CI) and, for models other than ``reference``, shifts.

    Rate keys as in :func:`preference_rates`, shift keys as in :func:`shifts` (NaN for the reference
    itself), ``n_paired`` (= ``shift_pp_n`` = ``score_shift_n``, for the report's ``x [lo, hi] (n=...)`` cells)
    the number of items in the shift.
    """
    return _summary(rows, reference, ("stage",), n_boot, seed, unit)


def dimension_summary(rows: Iterable[dict], reference: str = BASE_MODEL, n_boot: int = 2000,
                      seed: int = 0, unit: str = "model") -> list[dict]:
    """As :func:`stage_summary`, per model (``unit``) x scorer x dimension."""
    return _summary(rows, reference, ("dimension",), n_boot, seed, unit)
