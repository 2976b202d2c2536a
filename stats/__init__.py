"""Statistics used across the suite (the foundation: no stage owns it, every stage may import it).
Every estimate comes with a 95% CI and its sample size.

- ``bootstrap_ci``: percentile bootstrap of the mean over items;
- ``paired_bootstrap_diff``: mean of (a - b) over paired items, bootstrap CI;
- ``bootstrap_diff_ci``: mean(a) - mean(b) for two independent samples, each resampled alone;
- ``wilson_ci``: Wilson score interval for a pass rate;
- ``paired_permutation_test``: two-sided sign-flip permutation test on paired differences;
- ``permutation_test_vs_null``: where an effect falls in a null distribution (e.g. random directions);
- ``bh_adjust``: Benjamini-Hochberg adjusted p-values (q-values);
- ``slope_ci``: least-squares slope of y on x with an item-bootstrap CI (dose-response);
- ``cluster_bootstrap_ci``: mean with a two-level bootstrap (seeds, then items within a seed);
- ``cluster_bootstrap_diff_ci``: mean(a) - mean(b) of two item sets scored under the same seeds, two-level;
- ``spearman_trend_test``: one-sided Spearman trend test across ordered groups (permutation p-value);
- ``ratio_ci``: ratio of two paired means (share of a shift) with an item-bootstrap CI.
All seeded: the same inputs give the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 2000
ALPHA = 0.05


@dataclass
class Estimate:
    estimate: float
    lo: float
    hi: float
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.lo:+.3f}, {self.hi:+.3f}] (n={self.n})"


def _clean(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    return x[np.isfinite(x)]


def bootstrap_ci(values, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    x = _clean(values)
    if x.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if x.size == 1:
        return Estimate(float(x[0]), float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(x.mean()), float(lo), float(hi), int(x.size))


def paired_bootstrap_diff(a, b, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, n_boot, alpha, seed)


def bootstrap_diff_ci(a, b, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    """mean(a) - mean(b) for independent samples (e.g. different item sets); each resampled on its own.

    ``n`` is the smaller of the two sample sizes; the CI is NaN when either sample has fewer than 2 values.
    """
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    est = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(est, float("nan"), float("nan"), int(min(x.size, y.size)))
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    my = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(1)
    lo, hi = np.quantile(mx - my, [alpha / 2, 1 - alpha / 2])
    return Estimate(est, float(lo), float(hi), int(min(x.size, y.size)))


def wilson_ci(k: int, n: int, alpha: float = ALPHA) -> Estimate:
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    z = _z(1 - alpha / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k <= 0 else max(0.0, centre - half)  # exact bounds at 0/n and n/n (no rounding residue)
    hi = 1.0 if k >= n else min(1.0, centre + half)
    return Estimate(p, lo, hi, n)


def _z(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def paired_permutation_test(a, b, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value that mean(a - b) = 0, by random sign flips of the paired differences."""
    d = _clean(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    if d.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    obs = abs(d.mean())
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs((signs * d).mean(1))
    return float((1 + np.sum(null >= obs - 1e-12)) / (n_perm + 1))


def permutation_test_vs_null(effect: float, null_effects) -> float:
    """Two-sided empirical p-value of ``effect`` against null effects (e.g. per random direction)."""
    null = _clean(null_effects)
    if null.size == 0 or not np.isfinite(effect):
        return float("nan")
    centre = np.median(null)
    return float((1 + np.sum(np.abs(null - centre) >= abs(effect - centre))) / (null.size + 1))


def bh_adjust(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values; NaNs stay NaN and are not counted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    res = np.empty(m)
    res[order] = q
    out[ok] = res
    return out


def slope_ci(x, y, items=None, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    """Slope of y on x; CI by resampling ``items`` (clusters: all doses of an item move together)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    items = np.arange(x.size) if items is None else np.asarray(items)[ok]

    def fit(xx, yy):
        xc = xx - xx.mean()
        den = (xc * xc).sum()
        return float((xc * (yy - yy.mean())).sum() / den) if den > 0 else float("nan")

    est = fit(x, y)
    uniq = np.unique(items)
    groups = [np.flatnonzero(items == u) for u in uniq]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        boots.append(fit(x[idx], y[idx]))
    boots = _clean(boots)
    lo, hi = (np.quantile(boots, [alpha / 2, 1 - alpha / 2]) if boots.size else (float("nan"),) * 2)
    return Estimate(est, float(lo), float(hi), int(len(uniq)))


def cluster_bootstrap_ci(values, clusters, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    """Mean of ``values`` with a two-level (hierarchical) bootstrap: resample clusters (e.g. tuning seeds),
    then values within each drawn cluster. The estimate is the mean of the cluster means (each seed weighs
    the same); ``n`` is the number of values. With one cluster this is exactly ``bootstrap_ci``."""
    x = np.asarray(values, dtype=float).ravel()
    c = np.asarray(clusters).ravel()
    if c.shape != x.shape:
        raise ValueError(f"cluster_bootstrap_ci: {c.size} cluster labels for {x.size} values")
    ok = np.isfinite(x)
    x, c = x[ok], c[ok]
    uniq = list(dict.fromkeys(c.tolist()))
    if len(uniq) <= 1:
        return bootstrap_ci(x, n_boot, alpha, seed)
    groups = [x[c == u] for u in uniq]
    est = float(np.mean([g.mean() for g in groups]))
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, len(groups), len(groups))
        means[b] = np.mean([groups[k][rng.integers(0, groups[k].size, groups[k].size)].mean() for k in picks])
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(est, float(lo), float(hi), int(x.size))


def cluster_bootstrap_diff_ci(a, a_clusters, b, b_clusters, n_boot: int = N_BOOT, alpha: float = ALPHA,
                              seed: int = 0) -> Estimate:
    """mean(a) - mean(b) for two independent item sets that share clusters (e.g. stage 1 and stage 3 items of
    the same tuning seeds): resample clusters, then a's and b's values within each drawn cluster. The estimate
    is the mean over clusters of the per-cluster difference; ``n`` the smaller sample. With one cluster this is
    exactly ``bootstrap_diff_ci``."""
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    cx, cy = np.asarray(a_clusters).ravel(), np.asarray(b_clusters).ravel()
    if cx.shape != x.shape or cy.shape != y.shape:
        raise ValueError("cluster_bootstrap_diff_ci: one cluster label per value is needed")
    okx, oky = np.isfinite(x), np.isfinite(y)
    x, cx, y, cy = x[okx], cx[okx], y[oky], cy[oky]
    uniq = list(dict.fromkeys([*cx.tolist(), *cy.tolist()]))
    if len(uniq) <= 1:
        return bootstrap_diff_ci(x, y, n_boot, alpha, seed)
    groups = [(x[cx == u], y[cy == u]) for u in uniq]
    if any(g.size < 2 or h.size < 2 for g, h in groups):
        return Estimate(float(np.mean([g.mean() - h.mean() for g, h in groups])), float("nan"), float("nan"),
                        int(min(x.size, y.size)))
    est = float(np.mean([g.mean() - h.mean() for g, h in groups]))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        picks = rng.integers(0, len(groups), len(groups))
        diffs[i] = np.mean([groups[k][0][rng.integers(0, groups[k][0].size, groups[k][0].size)].mean()
                            - groups[k][1][rng.integers(0, groups[k][1].size, groups[k][1].size)].mean()
                            for k in picks])
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return Estimate(est, float(lo), float(hi), int(min(x.size, y.size)))


def spearman_trend_test(groups, alternative: str = "decreasing", n_perm: int = 5000,
                        seed: int = 0) -> tuple[float, float]:
    """Spearman correlation between the position of each value's group in the order (0, 1, 2 ...) and the
    value, pooled over ``groups`` (ordered list of 1-D samples), with a one-sided permutation p-value
    (values shuffled across groups). ``alternative``: ``decreasing`` or ``increasing``. Returns (rho, p)."""
    from scipy.stats import rankdata

    gs = [np.asarray(g, dtype=float) for g in groups]
    gs = [g[np.isfinite(g)] for g in gs]
    pos = np.concatenate([np.full(g.size, k, dtype=float) for k, g in enumerate(gs)])
    vals = np.concatenate(gs) if gs else np.zeros(0)
    if len([g for g in gs if g.size]) < 2 or np.ptp(vals) == 0:
        return float("nan"), float("nan")
    rp, rv = rankdata(pos), rankdata(vals)
    rp, rv = (rp - rp.mean()) / np.linalg.norm(rp - rp.mean()), rv - rv.mean()
    rv = rv / np.linalg.norm(rv)
    rho = float(rp @ rv)
    rng = np.random.default_rng(seed)
    null = np.array([rp @ rv[rng.permutation(rv.size)] for _ in range(n_perm)])
    sign = -1.0 if alternative == "decreasing" else 1.0
    p = float((1 + np.sum(sign * null >= sign * rho - 1e-12)) / (n_perm + 1))
    return rho, p


def ratio_ci(num, den, n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> Estimate:
    """mean(num) / mean(den) over paired items (e.g. the share of a shift a patch recovers), with an
    item-bootstrap percentile CI (resamples whose mean(den) is 0 are dropped). NaN when mean(den) is 0."""
    x, y = np.asarray(num, dtype=float).ravel(), np.asarray(den, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal shapes, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0 or y.mean() == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), int(x.size))
    est = float(x.mean() / y.mean())
    if x.size < 2:
        return Estimate(est, float("nan"), float("nan"), 1)
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    d = y[idx].mean(1)
    r = x[idx].mean(1)[d != 0] / d[d != 0]
    lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2]) if r.size else (float("nan"),) * 2
    return Estimate(est, float(lo), float(hi), int(x.size))
