"""The one paired-effect engine: effects A - B over paired items, per group, with a bootstrap CI, a sign-flip
permutation p-value and Benjamini-Hochberg q-values over a stated family; the share of a shift
(``share_of_shift``) a treatment removes (necessity) or recovers (sufficiency). evals (``compare``), the cascade
(``shifts``), the steering verdict (effects, comparisons, slopes, necessity), patching (fractions), prevention
(shifts, blocking), the identity check, direction reading, the predictions and the report all pair through here.

Input: a table of score rows (``artifacts.rows`` schema or any columns: ``value``, ``item`` and whatever
identifies a side). A *side* is a selection ``{column: value}`` of rows (e.g. ``{"model": "conscious"}`` or
``{"arm": "self_model", "op": "add", "layer": 14, "dose": 4.0}``); its score per item is the mean of its rows
(duplicate rows of one item count once). A contrast pairs side A with side B on ``pair_on`` (the item, within
each group of ``by``); ``units`` (columns of A's rows, e.g. the random direction of a pooled ``random`` arm) make
several A scores pair with one B score. A pair with a non-finite score is dropped.

Item order (it fixes which value each bootstrap index draws, so it is part of the result): ``order="sorted"``
sorts the pair keys, ``order="a"`` keeps the order in which A's rows first name them. All seeded: the same rows
give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stats import (
    N_BOOT,
    Estimate,
    bh_adjust,
    bootstrap_ci,
    paired_bootstrap_diff,
    paired_permutation_test,
    ratio_ci,
)

EFFECT_COLUMNS = ("estimate", "lo", "hi", "n", "p")


def paired_effect(a, b, n_boot: int = N_BOOT, seed: int = 0, n_perm: int = 0) -> dict[str, float]:
    """mean(a - b) over aligned pairs (non-finite pairs dropped) with a bootstrap 95% CI (``estimate``, ``lo``,
    ``hi``, ``n``) and the two-sided sign-flip permutation p-value ``p`` (NaN when ``n_perm`` is 0)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    est = paired_bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
    p = paired_permutation_test(a, b, n_perm=n_perm, seed=seed) if n_perm and a.size else float("nan")
    return {**est.as_dict(), "p": p}


def _select(df: pd.DataFrame, side: Mapping[str, Any]) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for col, val in side.items():
        if col not in df.columns:
            raise KeyError(f"paired effects: no column {col!r} to select {dict(side)} (columns: {list(df.columns)})")
        mask &= df[col] == val
    return mask


def side_scores(df: pd.DataFrame, side: Mapping[str, Any], keys: Sequence[str], value: str = "value",
                order: str = "sorted") -> pd.Series:
    """The mean ``value`` per ``keys`` of the rows selected by ``side`` (index: ``keys``, in ``order``)."""
    if order not in ("sorted", "a"):
        raise ValueError(f"order must be 'sorted' or 'a', not {order!r}")
    rows = df[_select(df, side)]
    return rows.groupby(list(keys), sort=order == "sorted", dropna=False)[value].mean()


def paired_values(df: pd.DataFrame, a: Mapping[str, Any], b: Mapping[str, Any], pair_on: Sequence[str] = ("item",),
                  units: Sequence[str] = (), value: str = "value", order: str = "sorted") -> pd.DataFrame:
    """One row per A unit with a B partner: columns ``pair_on`` + ``units``, ``a``, ``b`` (A's scores in
    ``order``; a B score is shared by every A unit of its pair key)."""
    sa = side_scores(df, a, [*pair_on, *units], value, order).rename("a").reset_index()
    sb = side_scores(df, b, list(pair_on), value, order).rename("b").reset_index()
    return sa.merge(sb, on=list(pair_on), how="inner", sort=False)


def _key(k: Any) -> tuple:
    return k if isinstance(k, tuple) else (k,)


def _per_group(cache: dict, df: pd.DataFrame, side: Mapping[str, Any], by: list[str], keys: list[str], value: str,
               order: str, name: str) -> dict[tuple, pd.DataFrame]:
    """``side_scores`` of one side over all rows, split into {group key: frame of ``keys`` + ``name``} (each group's
    rows in the order ``side_scores`` gives them); computed once per side."""
    k = (name, tuple(side.items()))
    if k not in cache:
        s = side_scores(df, side, [*by, *[c for c in keys if c not in by]], value, order).rename(name).reset_index()
        drop = [c for c in by if c not in keys]
        cache[k] = {(): s} if not by else {_key(g): part.drop(columns=drop)[[*keys, name]].reset_index(drop=True)
                                           for g, part in s.groupby(by, sort=False, dropna=False)}
    return cache[k]


def add_q(effects: pd.DataFrame, family: Sequence[str], p: str = "p", q: str = "q") -> pd.DataFrame:
    """``effects`` with ``q``: Benjamini-Hochberg q-values of ``p`` within each family (rows sharing the
    ``family`` columns, all rows when ``family`` is empty; NaN p-values are not counted)."""
    out = effects.copy()
    out[q] = np.nan
    if out.empty:
        return out
    keys = [out[c].fillna(-1) if out[c].dtype.kind == "f" else out[c] for c in family] or [np.zeros(len(out))]
    for _, part in out.groupby(keys, sort=False, dropna=False):
        out.loc[part.index, q] = bh_adjust(part[p].to_numpy(dtype=float))
    return out


def paired_effects(df: pd.DataFrame, contrasts: Iterable[Mapping[str, Any]], by: Sequence[str] = (),
                   pair_on: Sequence[str] = ("item",), units: Sequence[str] = (), value: str = "value",
                   order: str = "sorted", n_boot: int = N_BOOT, seed: int = 0, n_perm: int = 0,
                   family: Sequence[str] | None = None, keep_empty: bool = False) -> pd.DataFrame:
    """Per group of ``by`` (in the order the rows first name them) and contrast: the paired effect A - B.

    ``contrasts``: dicts with ``a`` and ``b`` (side selections) and any labels, copied into the row. One row per
    (group, contrast) with ``by``, the labels, ``estimate``, ``lo``, ``hi``, ``n`` (pairs), ``n_unpaired`` (A units
    without a B partner), ``p`` (when ``n_perm`` > 0) and ``q`` (BH within ``family`` columns, when given). A group
    where the contrast has no pair is left out unless ``keep_empty``.
    """
    contrasts = [dict(c) for c in contrasts]
    by = list(by)
    gkeys = [()] if not by else [tuple(k) for k in df[by].drop_duplicates().itertuples(index=False)]
    cache: dict[tuple, dict] = {}
    out = []
    for gkey in gkeys:
        for c in contrasts:
            sa = _per_group(cache, df, c["a"], by, [*pair_on, *units], value, order, "a").get(gkey)
            if sa is None or sa.empty:
                continue
            sb = _per_group(cache, df, c["b"], by, list(pair_on), value, order, "b").get(gkey)
            pv = sa.merge(sb if sb is not None else pd.DataFrame(columns=[*pair_on, "b"]), on=list(pair_on),
                          how="inner", sort=False)
            if pv.empty and not keep_empty:
                continue
            eff = paired_effect(pv["a"], pv["b"], n_boot=n_boot, seed=seed, n_perm=n_perm)
            labels = {k: v for k, v in c.items() if k not in ("a", "b")}
            out.append({**dict(zip(by, gkey)), **labels, **eff, "n_unpaired": int(len(sa) - len(pv))})
    res = pd.DataFrame(out)
    if family is not None and len(res):
        res = add_q(res, family)
    return res


def share_of_shift(df: pd.DataFrame, full: Mapping[str, Any], reference: Mapping[str, Any],
                   treated: Mapping[str, Any], pair_on: Sequence[str] = ("item",), value: str = "value",
                   n_boot: int = N_BOOT, seed: int = 0, n_perm: int = 0, moved: str = "removed") -> dict[str, Any]:
    """How much of the shift ``full - reference`` a treatment moves, over the items all three sides share
    (sorted): ``shift`` (full - reference) and the moved part, each an ``Estimate``: ``removed`` = full - treated
    (necessity: an ablation, a reverse patch) or, with ``moved="recovered"``, ``recovered`` = treated - reference
    (sufficiency: a forward patch puts the tune's state into the reference); ``p`` its sign-flip p-value;
    ``fraction`` = mean(moved) / mean(shift) with an item-bootstrap CI (``stats.ratio_ci``)."""
    if moved not in ("removed", "recovered"):
        raise ValueError(f"share_of_shift: moved must be 'removed' or 'recovered', not {moved!r}")
    s = [side_scores(df, side, list(pair_on), value) for side in (full, reference, treated)]
    items = s[1].index.intersection(s[0].index).intersection(s[2].index)
    f, r, t = (x.loc[items].to_numpy(dtype=float) for x in s)
    shift, (hi, lo) = f - r, ((f, t) if moved == "removed" else (t, r))
    part = hi - lo
    frac = ratio_ci(part, shift, n_boot=n_boot, seed=seed)
    if len(items) == 1 and np.isfinite(frac.estimate):  # one item: every resample is that item
        frac = Estimate(frac.estimate, frac.estimate, frac.estimate, frac.n)
    p = paired_permutation_test(hi, lo, n_perm=n_perm, seed=seed) if n_perm else float("nan")
    return {"shift": bootstrap_ci(shift, n_boot=n_boot, seed=seed), moved: bootstrap_ci(part, n_boot=n_boot,
                                                                                        seed=seed),
            "p": p, "fraction": frac}
