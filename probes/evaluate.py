"""Held-out evaluation of probes: grouped splits, cluster-bootstrap CIs, paired accuracy, selectivity, layer selection.

Splits (``make_splits``). With an answer-phrasing id on every row (``phrasing``: the id of the answer's
phrasing template, shared across families), cross-validation holds out phrasings as well as families:
families are dealt into ``n_splits`` folds (``GroupKFold``) and phrasings into ``phrasing_splits``
folds, and each of the ``n_splits x phrasing_splits`` cells is one test fold: test = rows whose family
is in the cell's families AND whose phrasing is in its phrasings; train = rows with NEITHER (rows that
share only one of the two are left out of that fold). Every row is tested exactly once, and no test
row shares a family or a phrasing with its training rows. Phrasings are dealt class by class, so every
phrasing fold holds phrasings of both classes. Without phrasings (or with fewer than two per class),
the split falls back to families only (``GroupKFold`` on ``template_id``) and says so (``split["note"]``).

Everything fitted (standardisation, C, class means, thresholds) sees the training rows only.
Out-of-fold decision scores (each fold's own threshold subtracted, so 0 is the boundary in every fold)
are pooled; accuracy and AUROC are computed on the pooled scores, with 95% CIs from a cluster
bootstrap over families (families resampled with replacement), and the spread over folds.

Paired accuracy (``pairs``: a pair id per row, e.g. ``pair_id``: rows answering the same prompt): the
share of pairs whose positive row scores higher than its negative row (ties count half), on the
pooled out-of-fold scores, bootstrapped over families; per question polarity too when rows carry it.

Selectivity (``selectivity``): the probe's held-out accuracy minus that of a baseline on the same
rows and splits (``probes.lexical``: a bag of words of the answer), CI from the cluster bootstrap of
the paired per-row difference.

Layer selection (``select_layer``): the best selectivity (accuracy when there is no baseline) among
the first 80% of layers; ties broken by paired accuracy, then AUROC, then the earlier layer. The
lexical baseline does not depend on the layer, so the ranking equals that of accuracy; what the
baseline adds is the level (a selectivity near 0 says the layer reads no more than the words).
Late layers are excluded because they mostly encode the next token and steering there has little
room to act downstream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.model_selection import GroupKFold

from probes.estimators import ProbeError, check_xy, make_probe

LATE_FRACTION = 0.8
PHRASING_SPLITS = 2
Splits = list[tuple[np.ndarray, np.ndarray]]


def group_splits(groups: Sequence[Any], n_splits: int = 5) -> Splits:
    """GroupKFold splits over ``groups`` (at most ``n_splits``, at most one fold per group)."""
    groups = np.asarray([str(g) for g in groups])
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ProbeError(f"held-out-family CV needs at least 2 template families, got {n_groups}; "
                         "give the examples a 'template_id' naming their question family")
    k = min(n_splits, n_groups)
    return list(GroupKFold(n_splits=k).split(np.zeros(groups.size), groups=groups))


def _phrasing_folds(phrasings: np.ndarray, y: np.ndarray, k: int) -> dict[str, int]:
    """Deal phrasing ids into ``k`` folds class by class, each class's phrasings spread over every fold."""
    fold: dict[str, int] = {}
    for c in np.unique(y):
        mine = sorted(set(phrasings[y == c]))
        have = Counter(fold[p] for p in mine if p in fold)
        for p in mine:
            if p not in fold:
                fold[p] = min(range(k), key=lambda j: (have[j], j))
                have[fold[p]] += 1
    return fold


def crossed_splits(groups: Sequence[Any], phrasings: Sequence[Any], y: Sequence[Any],
                   n_splits: int = 5, phrasing_splits: int = PHRASING_SPLITS) -> Splits:
    """Family x phrasing splits: test = held-out families AND held-out phrasings, train = neither."""
    groups = np.asarray([str(g) for g in groups])
    phrasings = np.asarray([str(p) for p in phrasings])
    y = np.asarray(y)
    fam_fold = np.empty(groups.size, dtype=int)
    for i, (_, te) in enumerate(group_splits(groups, n_splits)):
        fam_fold[te] = i
    pf = _phrasing_folds(phrasings, y, phrasing_splits)
    phr_fold = np.asarray([pf[p] for p in phrasings])
    out = []
    for i in range(int(fam_fold.max()) + 1):
        for j in range(phrasing_splits):
            te = np.flatnonzero((fam_fold == i) & (phr_fold == j))
            tr = np.flatnonzero((fam_fold != i) & (phr_fold != j))
            if te.size:
                out.append((tr, te))
    return out


def make_splits(groups: Sequence[Any], y: Sequence[Any], phrasings: Sequence[Any] | None = None,
                n_splits: int = 5, phrasing_splits: int = PHRASING_SPLITS) -> tuple[Splits, dict[str, Any]]:
    """The held-out splits and a description; family x phrasing when every row has a phrasing, else family."""
    groups = np.asarray([str(g) for g in groups])
    y = np.asarray(y)
    info: dict[str, Any] = {"scheme": "family", "n_families": int(np.unique(groups).size), "n_phrasings": 0,
                            "phrasing_splits": 1, "note": ""}
    if phrasings is None or any(p is None for p in phrasings):
        info["note"] = "rows carry no answer phrasing id: families held out, phrasings not"
    else:
        phr = np.asarray([str(p) for p in phrasings])
        per_class = min(np.unique(phr[y == c]).size for c in np.unique(y))
        k = min(phrasing_splits, per_class)
        info["n_phrasings"] = int(np.unique(phr).size)
        if k < 2:
            info["note"] = f"a class has {per_class} answer phrasing(s): families held out, phrasings not"
        else:
            splits = crossed_splits(groups, phr, y, n_splits, k)
            if all(np.unique(y[tr]).size == 2 for tr, _ in splits):
                info.update(scheme="family x phrasing", phrasing_splits=k)
                info["n_folds"] = len(splits)
                return splits, info
            info["note"] = "a family x phrasing fold would train on one class: families held out, phrasings not"
    splits = group_splits(groups, n_splits)
    info["n_folds"] = len(splits)
    return splits, info


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN with one class."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class ClusterBootstrap:
    """Resample the clusters (families) with replacement ``n_boot`` times; every statistic uses the same draws."""

    def __init__(self, clusters: Sequence[Any], n_boot: int, seed: int = 0):
        self.uniq = {c: i for i, c in enumerate(sorted({str(c) for c in clusters}))}
        g = len(self.uniq)
        rng = np.random.default_rng(seed)
        self.counts = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(np.float64) if n_boot else None

    def weights(self, clusters: Sequence[Any]) -> np.ndarray:
        """[n_boot, n] weight of each item (its cluster's draw count) in each replicate."""
        return self.counts[:, [self.uniq[str(c)] for c in clusters]]

    @staticmethod
    def _ci(values: np.ndarray) -> tuple[float, float]:
        values = values[np.isfinite(values)]
        if not values.size:
            return float("nan"), float("nan")
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(lo), float(hi)

    def mean_ci(self, v: np.ndarray, clusters: Sequence[Any]) -> tuple[float, float]:
        """95% CI of the mean of ``v`` (one value per item)."""
        if self.counts is None or not len(v):
            return float("nan"), float("nan")
        w = self.weights(clusters)
        tot = w.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._ci((w @ np.asarray(v, dtype=np.float64)) / tot)

    def auroc_ci(self, y: np.ndarray, s: np.ndarray, clusters: Sequence[Any]) -> tuple[float, float]:
        """95% CI of the AUROC: weighted Mann-Whitney statistic per replicate."""
        if self.counts is None:
            return float("nan"), float("nan")
        y = np.asarray(y).astype(bool)
        w = self.weights(clusters)
        w1, w0 = w[:, y], w[:, ~y]
        sp, sn = s[y], s[~y]
        wins = (sp[:, None] > sn[None, :]) + 0.5 * (sp[:, None] == sn[None, :])
        num = np.einsum("bi,ij,bj->b", w1, wins, w0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._ci(num / (w1.sum(1) * w0.sum(1)))


def pair_index(y: np.ndarray, pair_ids: Sequence[Any], polarity: Sequence[Any] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(positive rows, negative rows, polarity per pair): one positive and one negative row per pair id."""
    pos: dict[str, int] = {}
    neg: dict[str, int] = {}
    for r, (label, pid) in enumerate(zip(np.asarray(y), pair_ids)):
        if pid is not None:
            (pos if label == 1 else neg).setdefault(str(pid), r)
    keys = [k for k in pos if k in neg]
    p = np.asarray([pos[k] for k in keys], dtype=int)
    n = np.asarray([neg[k] for k in keys], dtype=int)
    pol = None if polarity is None else np.asarray([str(polarity[i]) for i in p])
    return p, n, pol


def paired_metrics(scores: np.ndarray, pairs: tuple, groups: np.ndarray, boot: ClusterBootstrap | None,
                   prefix: str = "paired_accuracy") -> dict[str, Any]:
    """Share of pairs whose positive row scores higher (ties half), its CI, n; per polarity when known."""
    pos, neg, pol = pairs
    if not pos.size:
        return {}
    d = scores[pos] - scores[neg]
    win = (d > 0) + 0.5 * (d == 0)
    g = groups[pos]
    out: dict[str, Any] = {}
    subsets = [("", np.ones(pos.size, bool))]
    if pol is not None:
        subsets += [(f"_{v}", pol == v) for v in sorted(set(pol))]
    for suffix, m in subsets:
        lo, hi = boot.mean_ci(win[m], g[m]) if boot is not None else (float("nan"), float("nan"))
        out.update({f"{prefix}{suffix}": float(win[m].mean()) if m.any() else float("nan"),
                    f"{prefix}{suffix}_lo": lo, f"{prefix}{suffix}_hi": hi, f"n_pairs{suffix}": int(m.sum())})
    return out


def cross_validate(probe: str | Callable[[], Any], X, y, groups, n_splits: int = 5, n_boot: int = 500,
                   seed: int = 0, probe_kwargs: dict | None = None, *, splits: Splits | None = None,
                   pairs: Sequence[Any] | None = None, polarity: Sequence[Any] | None = None) -> dict[str, Any]:
    """Held-out evaluation of one probe on one feature matrix (one layer, or a bag of words).

    ``splits`` default to ``group_splits(groups, n_splits)``. Returns accuracy, AUROC (pooled
    out-of-fold), their cluster-bootstrap 95% CIs, the per-fold accuracy spread, n, the number of
    families and folds, with ``pairs`` the paired accuracy (and per ``polarity``), and the arrays
    ``oof`` (pooled decision scores) and ``correct`` (0/1 per row).
    """
    X, yb = check_xy(X, y, "cross_validate")
    groups = np.asarray([str(g) for g in groups])
    if groups.shape != yb.shape:
        raise ProbeError(f"cross_validate: {groups.size} group ids for {yb.size} rows")
    factory = (lambda: make_probe(probe, **(probe_kwargs or {}))) if isinstance(probe, str) else probe
    oof = np.full(yb.size, np.nan, dtype=np.float64)
    fold_acc = []
    for tr, te in splits if splits is not None else group_splits(groups, n_splits):
        if np.unique(yb[tr]).size < 2:
            raise ProbeError("cross_validate: a training fold holds one class only; every template family "
                             "should contain examples of both conditions (paired prompts)")
        p = factory().fit(X[tr], yb[tr], groups=groups[tr])
        oof[te] = p.decision_function(X[te])
        fold_acc.append(float(np.mean((oof[te] > 0) == yb[te])))
    if np.isnan(oof).any():
        raise ProbeError(f"cross_validate: {int(np.isnan(oof).sum())} rows are in no test fold; the splits must "
                         "test every row once")
    correct = ((oof > 0) == yb).astype(np.float64)
    boot = ClusterBootstrap(groups, n_boot, seed) if n_boot else None
    acc_lo, acc_hi = boot.mean_ci(correct, groups) if boot else (np.nan, np.nan)
    auc_lo, auc_hi = boot.auroc_ci(yb, oof, groups) if boot else (np.nan, np.nan)
    out = {"accuracy": float(correct.mean()), "accuracy_lo": float(acc_lo), "accuracy_hi": float(acc_hi),
           "auroc": auroc(yb, oof), "auroc_lo": float(auc_lo), "auroc_hi": float(auc_hi),
           "fold_accuracy_sd": float(np.std(fold_acc)), "n": int(yb.size),
           "n_families": int(np.unique(groups).size), "n_folds": len(fold_acc)}
    if pairs is not None:
        out.update(paired_metrics(oof, pair_index(yb, pairs, polarity), groups, boot))
    return {**out, "oof": oof, "correct": correct}


def selectivity(correct: np.ndarray, baseline_correct: np.ndarray, groups: Sequence[Any], n_boot: int = 500,
                seed: int = 0) -> dict[str, float]:
    """Accuracy minus the baseline's accuracy on the same rows, cluster-bootstrap CI of the paired difference."""
    d = np.asarray(correct, dtype=np.float64) - np.asarray(baseline_correct, dtype=np.float64)
    lo, hi = ClusterBootstrap(groups, n_boot, seed).mean_ci(d, groups) if n_boot else (np.nan, np.nan)
    return {"selectivity": float(d.mean()), "selectivity_lo": float(lo), "selectivity_hi": float(hi)}


def eligible_layers(layers: Sequence[int], n_model_layers: int | None = None,
                    fraction: float = LATE_FRACTION) -> list[int]:
    """Layers in the first ``fraction`` of the model (all of them if that would leave none)."""
    n = n_model_layers if n_model_layers is not None else max(layers) + 1
    cut = int(np.ceil(fraction * n))
    keep = [L for L in layers if L < cut]
    return keep or list(layers)


def _finite(x: Any, default: float = -1.0) -> float:
    return round(float(x), 6) if x is not None and np.isfinite(x) else default


def select_layer(per_layer: dict[int, dict[str, float]], n_model_layers: int | None = None,
                 fraction: float = LATE_FRACTION) -> int:
    """Best selectivity (else accuracy) among the first ``fraction`` of layers; ties: paired accuracy, AUROC,
    then the earlier layer."""
    if not per_layer:
        raise ProbeError("select_layer: no per-layer metrics")
    cands = eligible_layers(sorted(per_layer), n_model_layers, fraction)

    def key(L):
        m = per_layer[L]
        first = m["selectivity"] if m.get("selectivity") is not None and np.isfinite(m["selectivity"]) \
            else m["accuracy"]
        return (_finite(first), _finite(m.get("paired_accuracy")), _finite(m.get("auroc")), -L)

    return int(max(cands, key=key))
