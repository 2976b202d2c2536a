"""Held-out-family evaluation of probes and the layer-selection rule.

Cross-validation is grouped BY TEMPLATE FAMILY (``GroupKFold`` on ``template_id``): a family is never
in both a training and a test fold, so a probe that memorises phrasings scores at chance on new
families. Everything fitted (standardisation, C, class means, thresholds) sees the training folds
only. Out-of-fold decision scores (each fold's own threshold subtracted, so 0 is the boundary in every
fold) are pooled; accuracy and AUROC are computed on the pooled scores, with 95% CIs from a cluster
bootstrap over families (families resampled with replacement), and the spread over folds.

Layer selection (``select_layer``): the best held-out-family accuracy among the first 80% of layers,
ties broken by AUROC, then by the earlier layer. Late layers are excluded because they mostly encode the
next token and steering there has little room to act downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.model_selection import GroupKFold

from probes.estimators import ProbeError, check_xy, make_probe

LATE_FRACTION = 0.8


def group_splits(groups: Sequence[Any], n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold splits over ``groups`` (at most ``n_splits``, at most one fold per group)."""
    groups = np.asarray([str(g) for g in groups])
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ProbeError(f"held-out-family CV needs at least 2 template families, got {n_groups}; "
                         "give the examples a 'template_id' naming their question family")
    k = min(n_splits, n_groups)
    return list(GroupKFold(n_splits=k).split(np.zeros(groups.size), groups=groups))


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN with one class."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _cluster_bootstrap(y: np.ndarray, s: np.ndarray, groups: np.ndarray, n_boot: int, seed: int):
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(uniq.size)]
    rng = np.random.default_rng(seed)
    accs, aucs = [], []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, uniq.size, uniq.size)])
        accs.append(np.mean((s[idx] > 0) == y[idx]))
        aucs.append(auroc(y[idx], s[idx]))
    q = [2.5, 97.5]
    return np.nanpercentile(accs, q), np.nanpercentile(aucs, q)


def cross_validate(probe: str | Callable[[], Any], X, y, groups, n_splits: int = 5, n_boot: int = 500,
                   seed: int = 0, probe_kwargs: dict | None = None) -> dict[str, Any]:
    """Grouped K-fold evaluation of one probe on one layer.

    Returns accuracy, AUROC (pooled out-of-fold), their cluster-bootstrap 95% CIs, the per-fold
    accuracy spread, n, the number of families and folds, and ``oof`` (the pooled decision scores).
    """
    X, yb = check_xy(X, y, "cross_validate")
    groups = np.asarray([str(g) for g in groups])
    if groups.shape != yb.shape:
        raise ProbeError(f"cross_validate: {groups.size} group ids for {yb.size} rows")
    factory = (lambda: make_probe(probe, **(probe_kwargs or {}))) if isinstance(probe, str) else probe
    oof = np.zeros(yb.size, dtype=np.float64)
    fold_acc = []
    for tr, te in group_splits(groups, n_splits):
        if np.unique(yb[tr]).size < 2:
            raise ProbeError("cross_validate: a training fold holds one class only; every template family "
                             "should contain examples of both conditions (paired prompts)")
        p = factory().fit(X[tr], yb[tr], groups=groups[tr])
        oof[te] = p.decision_function(X[te])
        fold_acc.append(float(np.mean((oof[te] > 0) == yb[te])))
    acc = float(np.mean((oof > 0) == yb))
    auc = auroc(yb, oof)
    (acc_lo, acc_hi), (auc_lo, auc_hi) = _cluster_bootstrap(yb, oof, groups, n_boot, seed) if n_boot else (
        (np.nan, np.nan), (np.nan, np.nan))
    return {"accuracy": acc, "accuracy_lo": float(acc_lo), "accuracy_hi": float(acc_hi),
            "auroc": auc, "auroc_lo": float(auc_lo), "auroc_hi": float(auc_hi),
            "fold_accuracy_sd": float(np.std(fold_acc)), "n": int(yb.size),
            "n_families": int(np.unique(groups).size), "n_folds": len(fold_acc), "oof": oof}


def eligible_layers(layers: Sequence[int], n_model_layers: int | None = None,
                    fraction: float = LATE_FRACTION) -> list[int]:
    """Layers in the first ``fraction`` of the model (all of them if that would leave none)."""
    n = n_model_layers if n_model_layers is not None else max(layers) + 1
    cut = int(np.ceil(fraction * n))
    keep = [L for L in layers if L < cut]
    return keep or list(layers)


def select_layer(per_layer: dict[int, dict[str, float]], n_model_layers: int | None = None,
                 fraction: float = LATE_FRACTION) -> int:
    """Best held-out-family accuracy among the first ``fraction`` of layers; ties: AUROC, then earlier layer."""
    if not per_layer:
        raise ProbeError("select_layer: no per-layer metrics")
    cands = eligible_layers(sorted(per_layer), n_model_layers, fraction)

    def key(L):
        m = per_layer[L]
        auc = m.get("auroc", float("nan"))
        return (round(m["accuracy"], 6), round(auc if np.isfinite(auc) else -1.0, 6), -L)

    return int(max(cands, key=key))
