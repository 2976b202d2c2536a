"""Directions from activation caches: contrasts between conditions, and what fine-tuning wrote.

- ``contrast_direction(cache, name, positive, negative, position)``: per layer, the raw difference
  mean(positive rows) - mean(negative rows), the mean residual norm over those rows, and the
  held-out-family metrics of each probe; ``metrics["selected_layer"]`` by ``evaluate.select_layer``.
- ``shift_direction(base_cache, tuned_cache, name)``: per layer, mean over prompts of (tuned - base)
  activation on the same prompts (rows matched by id), with probes separating tuned from base rows
  cross-validated by prompt (both copies of a prompt always fall in the same fold).

Sign conventions: a contrast points from ``negative`` to ``positive`` (``self_model``: towards the
conscious answers); a shift points from the base model towards the tuned model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from activations import ActivationCache, CacheError
from probes.directions import Direction
from probes.estimators import ProbeError
from probes.evaluate import LATE_FRACTION, cross_validate, select_layer

SELECTION_RULE = (f"best held-out-family accuracy of the mean_diff probe among the first {LATE_FRACTION:.0%} "
                  "of layers; ties broken by AUROC, then the earlier layer")
METRIC_KEYS = ("accuracy", "accuracy_lo", "accuracy_hi", "auroc", "auroc_lo", "auroc_hi", "fold_accuracy_sd",
               "n", "n_families", "n_folds")


def check_layers(cache: ActivationCache, layers: Sequence[int] | None, site_kind: str = "resid_post") -> list[int]:
    held = [int(s.split(".")[1]) for s in cache.sites if s.startswith(site_kind + ".")]
    if layers is None:
        if not held:
            raise CacheError(f"{cache.path}: holds no {site_kind}.* sites (it holds {', '.join(cache.sites)}); "
                             f"re-cache with sites='{site_kind}.*'")
        return held
    missing = [int(L) for L in layers if int(L) not in held]
    if missing:
        raise CacheError(f"{cache.path}: layers {missing} are not in this cache ({site_kind} layers held: {held}); "
                         f"choose among those or re-cache with sites='{site_kind}.*'")
    return [int(L) for L in layers]


def _n_model_layers(cache: ActivationCache) -> int | None:
    return cache.manifest.get("n_layers")


def fit_layers(load, y: np.ndarray, groups: np.ndarray, layers: list[int], probes: Sequence[str],
               n_splits: int = 5, n_boot: int = 500, seed: int = 0, desc: str = "probe",
               probe_kwargs: dict[str, dict] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For each layer: X = load(L); returns raw mean-diff rows, residual norms and per-probe metric lists."""
    raws, norms = [], []
    per_probe: dict[str, dict[str, list]] = {p: {k: [] for k in METRIC_KEYS} for p in probes}
    for L in tqdm(layers, desc=desc, unit="layer", leave=False):
        X = load(L)
        raws.append(X[y == 1].mean(0, dtype=np.float64) - X[y == 0].mean(0, dtype=np.float64))
        norms.append(float(np.linalg.norm(X, axis=1).mean()))
        for p in probes:
            m = cross_validate(p, X, y, groups, n_splits=n_splits, n_boot=n_boot, seed=seed,
                               probe_kwargs=(probe_kwargs or {}).get(p))
            for k in METRIC_KEYS:
                per_probe[p][k].append(m[k])
    return np.asarray(raws, dtype=np.float32), np.asarray(norms, dtype=np.float32), per_probe


def _metrics(layers: list[int], per_probe: dict[str, dict[str, list]], n_model_layers: int | None) -> dict:
    out: dict[str, Any] = {"per_layer": per_probe, "layers": layers, "selection_rule": SELECTION_RULE}
    for p, m in per_probe.items():
        table = {L: {"accuracy": m["accuracy"][i], "auroc": m["auroc"][i]} for i, L in enumerate(layers)}
        out[f"selected_layer_{p}"] = select_layer(table, n_model_layers)
    main = "mean_diff" if "mean_diff" in per_probe else next(iter(per_probe), None)
    out["selection_probe"] = main
    if main is not None:
        out["selected_layer"] = int(out[f"selected_layer_{main}"])
        i = layers.index(out["selected_layer"])
        out["selected"] = {p: {k: m[k][i] for k in METRIC_KEYS} for p, m in per_probe.items()}
    else:  # no probes evaluated: the middle of the eligible range
        out["selected_layer"] = int(layers[len(layers) // 2])
    return out


def contrast_direction(cache: ActivationCache | str, name: str, positive: Any, negative: Any,
                       position: str = "response_mean", layers: Sequence[int] | None = None,
                       probes: Sequence[str] = ("mean_diff", "logistic"), label_field: str = "label",
                       group_field: str = "template_id", n_splits: int = 5, n_boot: int = 500, seed: int = 0,
                       site_kind: str = "resid_post", provenance: dict | None = None) -> Direction:
    """The ``positive`` minus ``negative`` direction (by ``label_field``) at ``position``, per layer."""
    cache = cache if isinstance(cache, ActivationCache) else ActivationCache(cache)
    labels = cache.column(label_field)
    rows = np.asarray([i for i, lab in enumerate(labels) if lab in (positive, negative)])
    present = sorted({str(lab) for lab in labels})
    for want in (positive, negative):
        if not any(lab == want for lab in labels):
            raise ProbeError(f"{cache.path}: no rows with {label_field}={want!r} for direction {name!r} "
                             f"(the cache's {label_field} values: {', '.join(present)}); cache examples of both "
                             "conditions")
    y = np.asarray([labels[i] == positive for i in rows], dtype=np.int64)
    gcol = cache.column(group_field)
    if any(gcol[i] is None for i in rows):
        raise ProbeError(f"{cache.path}: some rows have no {group_field!r}; held-out-family CV needs it on every row")
    groups = np.asarray([str(gcol[i]) for i in rows])
    layers = check_layers(cache, layers, site_kind)
    raw, norms, per_probe = fit_layers(lambda L: cache.load(f"{site_kind}.{L}", position, rows), y, groups, layers,
                                       probes, n_splits, n_boot, seed, desc=name)
    prov = {"kind": "contrast", "cache": str(cache.path), "model": cache.manifest.get("inputs", {}).get("model"),
            "cache_key": cache.manifest.get("key"), "label_field": label_field, "positive": positive,
            "negative": negative, "group_field": group_field, "n_positive": int(y.sum()),
            "n_negative": int((1 - y).sum()), **(provenance or {})}
    return Direction(name=name, layers=layers, raw=raw, resid_norm=norms, site_kind=site_kind, position=position,
                     provenance=prov, metrics=_metrics(layers, per_probe, _n_model_layers(cache)))


def shift_direction(base_cache: ActivationCache | str, tuned_cache: ActivationCache | str, name: str,
                    position: str = "last_prompt", layers: Sequence[int] | None = None,
                    probes: Sequence[str] = ("mean_diff",), n_splits: int = 5, n_boot: int = 500, seed: int = 0,
                    site_kind: str = "resid_post", provenance: dict | None = None) -> Direction:
    """Mean (tuned - base) activation over the prompts both caches hold (matched by example id)."""
    base = base_cache if isinstance(base_cache, ActivationCache) else ActivationCache(base_cache)
    tuned = tuned_cache if isinstance(tuned_cache, ActivationCache) else ActivationCache(tuned_cache)
    if base.d_model != tuned.d_model:
        raise ProbeError(f"{base.path} has width {base.d_model} but {tuned.path} has width {tuned.d_model}; "
                         "a tune shift compares a model with its own base")
    t_row = {i: r for r, i in enumerate(tuned.ids)}
    pairs = [(r, t_row[i]) for r, i in enumerate(base.ids) if i in t_row]
    if len(pairs) < 4:
        raise ProbeError(f"{base.path} and {tuned.path} share {len(pairs)} example ids; cache the same prompts "
                         "through both models")
    b_rows = np.asarray([p[0] for p in pairs])
    t_rows = np.asarray([p[1] for p in pairs])
    layers = check_layers(base, layers, site_kind)
    check_layers(tuned, layers, site_kind)
    y = np.r_[np.zeros(len(pairs)), np.ones(len(pairs))].astype(np.int64)
    groups = np.r_[b_rows, b_rows].astype(str)

    def load(L):
        s = f"{site_kind}.{L}"
        return np.concatenate([base.load(s, position, b_rows), tuned.load(s, position, t_rows)])

    raw, norms, per_probe = fit_layers(load, y, groups, layers, probes, n_splits, n_boot, seed, desc=name)
    prov = {"kind": "tune_shift", "base_cache": str(base.path), "tuned_cache": str(tuned.path),
            "base_model": base.manifest.get("inputs", {}).get("model"),
            "tuned_model": tuned.manifest.get("inputs", {}).get("model"),
            "adapter_sha256": tuned.manifest.get("inputs", {}).get("adapter_sha256"),
            "n_prompts": len(pairs), "group_field": "prompt id", **(provenance or {})}
    return Direction(name=name, layers=layers, raw=raw, resid_norm=norms, site_kind=site_kind, position=position,
                     provenance=prov, metrics=_metrics(layers, per_probe, _n_model_layers(base)))
