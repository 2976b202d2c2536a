"""Agreement between the cheap scorers and the judge: do ``continuation`` and ``choice`` rank models as
the judged pass rate does?

``agreement(rows, unit="model")``: per dimension, each unit (a ``model``, or a steering ``arm``: score rows of
``artifacts.rows``) gets its mean judged pass rate over the dimension's open items and its mean continuation
(choice) score over the dimension's pair/action items; the Pearson correlation across units is reported with a 95%
bootstrap CI that resamples the items of each scorer (the same resampled items for every unit, since
items are paired across units). A row ``dimension = "all"`` pools every (unit, dimension) cell.

``flag``: ``agrees`` when the CI lies above 0, ``disagrees`` when it lies below 0, ``unclear`` when it
spans 0, ``n/a`` with fewer than 3 units or no spread in either score. The report lists the dimensions
that are not ``agrees``: there the cheap numbers are not backed by the judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from artifacts.rows import normalise
from evals.scorers import CHEAP_SCORERS

N_BOOT = 1000
MIN_UNITS = 3
STATISTIC = "Pearson r across units of judged pass rate vs cheap score (item bootstrap 95% CI)"


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis of [..., n] arrays (NaN cells dropped pairwise per row; NaN when
    fewer than ``MIN_UNITS`` cells remain or a side has no spread)."""
    x, y = np.atleast_2d(x).astype(float), np.atleast_2d(y).astype(float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = ok.sum(-1)
    x, y = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(all="ignore"):
        mx, my = x.sum(-1, keepdims=True) / n[..., None], y.sum(-1, keepdims=True) / n[..., None]
        dx, dy = np.where(ok, x - mx, 0.0), np.where(ok, y - my, 0.0)
        sxy, sxx, syy = (dx * dy).sum(-1), (dx * dx).sum(-1), (dy * dy).sum(-1)
        r = sxy / np.sqrt(sxx * syy)
    return np.where((n >= MIN_UNITS) & (sxx > 1e-12) & (syy > 1e-12), r, np.nan)


def _table(rows: Iterable[dict[str, Any]], scorer: str, dimension: str | None, unit: str
           ) -> tuple[list[str], list[str], np.ndarray]:
    """(units, items, values [unit, item]) of one scorer (NaN where missing)."""
    cells: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["scorer"] == scorer and (dimension is None or r["dimension"] == dimension):
            cells[(str(r[unit]), f"{r['dimension']}/{r['item']}")] = float(r["value"])
    units = sorted({u for u, _ in cells})
    items = sorted({i for _, i in cells})
    m = np.full((len(units), len(items)), np.nan)
    ui, ii = {u: k for k, u in enumerate(units)}, {i: k for k, i in enumerate(items)}
    for (u, i), v in cells.items():
        m[ui[u], ii[i]] = v
    return units, items, m


class _Pair:
    """Judged and cheap value matrices over the units both have, ready for fast resampling."""

    def __init__(self, j: tuple, c: tuple):
        (ju, jitems, jm), (cu, citems, cm) = j, c
        self.units = sorted(set(ju) & set(cu))
        self.jm = jm[[ju.index(u) for u in self.units]]
        self.cm = cm[[cu.index(u) for u in self.units]]
        self.jdim = np.array([i.split("/", 1)[0] for i in jitems])
        self.cdim = np.array([i.split("/", 1)[0] for i in citems])
        self.dims = sorted(set(self.jdim) & set(self.cdim))

    @staticmethod
    def _means(m: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """[B, units] means over the item columns of each of B resamples (``cols``: [B, k])."""
        if cols.shape[1] == 0:
            return np.full((cols.shape[0], m.shape[0]), np.nan)
        with np.errstate(all="ignore"):
            return np.nanmean(m[:, cols], axis=2).T

    def corr(self, jcols: np.ndarray, ccols: np.ndarray, pooled: bool) -> np.ndarray:
        """r for each of B resamples of item columns (``jcols`` [B, nj], ``ccols`` [B, nc])."""
        if not pooled:
            return _pearson(self._means(self.jm, jcols), self._means(self.cm, ccols))
        x, y = [], []
        for d in self.dims:  # a resample keeps each item's dimension: resample within dimensions
            jd, cd = np.flatnonzero(self.jdim == d), np.flatnonzero(self.cdim == d)
            x.append(self._means(self.jm, jd[_within(jcols, jd.size)]))
            y.append(self._means(self.cm, cd[_within(ccols, cd.size)]))
        return _pearson(np.concatenate(x, 1), np.concatenate(y, 1)) if x else np.full(jcols.shape[0], np.nan)


def _within(cols: np.ndarray, k: int) -> np.ndarray:
    """Map resampled column indices onto ``k`` columns (identity for the unresampled row)."""
    if k == 0:
        return np.zeros((cols.shape[0], 0), dtype=int)
    return cols[:, :k] % k


def flag(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return "agrees" if lo > 0 else "disagrees" if hi < 0 else "unclear"


def agreement(rows: Sequence[dict[str, Any]], unit: str = "model", n_boot: int = N_BOOT, seed: int = 0
              ) -> list[dict[str, Any]]:
    """One row per (dimension, cheap scorer) with r, 95% CI, n units, n items and the flag (see module doc)."""
    rows = [normalise(r) for r in rows if r.get("scorer") in ("judged", *CHEAP_SCORERS)]  # rows of old runs too
    if not any(r["scorer"] == "judged" for r in rows):
        return []
    rng = np.random.default_rng(seed)
    dims = sorted({r["dimension"] for r in rows if r["scorer"] == "judged"})
    out = []
    for cheap in CHEAP_SCORERS:
        if not any(r["scorer"] == cheap for r in rows):
            continue
        for dim in [*dims, "all"]:
            d = None if dim == "all" else dim
            pair = _Pair(_table(rows, "judged", d, unit), _table(rows, cheap, d, unit))
            nj, nc = pair.jm.shape[1], pair.cm.shape[1]
            k = max(nj, nc, 1)
            r = float(pair.corr(np.arange(k)[None] % max(nj, 1), np.arange(k)[None] % max(nc, 1), d is None)[0]) \
                if nj and nc else float("nan")
            lo = hi = float("nan")
            if np.isfinite(r):
                jb = rng.integers(0, nj, (n_boot, nj)) if d else rng.integers(0, 1 << 30, (n_boot, nj))
                cb = rng.integers(0, nc, (n_boot, nc)) if d else rng.integers(0, 1 << 30, (n_boot, nc))
                boots = pair.corr(jb, cb, d is None)
                boots = boots[np.isfinite(boots)]
                if boots.size > 20:
                    lo, hi = float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))
            out.append({"dimension": dim, "cheap_scorer": cheap, "r": r, "lo": lo, "hi": hi,
                        "n_units": len(pair.units) * (1 if d else len(pair.dims)), "n_judged_items": nj,
                        "n_cheap_items": nc, "flag": flag(lo, hi), "statistic": STATISTIC})
    return out
