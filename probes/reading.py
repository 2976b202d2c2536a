"""Reading a direction: project evaluation-prompt activations of several models onto it, per layer.

``read_projections`` takes, per model name, a cache of the evaluation prompts (``last_prompt``) and a
map example id -> {"dimension", "stage"}; it returns one row per (model, layer, group) with the mean
projection onto the direction's unit vector and its bootstrap 95% CI, plus, for every model other than
``reference`` (the base model), the paired shift (model - reference, same prompts) with its CI.

Sign convention: a higher projection onto ``self_model`` = more like the conscious answers; a
positive shift = the tuned model leans further towards them than the base model on that prompt.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from activations import ActivationCache
from probes.directions import Direction
from probes.plots import pyplot, save_png
from stats import bootstrap_ci, paired_bootstrap_diff


def project(cache: ActivationCache, direction: Direction, layer: int, ids: Sequence[str],
            position: str = "last_prompt") -> np.ndarray:
    """Scalar projections of the rows ``ids`` of ``cache`` onto ``direction``'s unit vector at ``layer``."""
    direction.validate_width(cache.d_model, f"cache {cache.path}")
    where = {i: r for r, i in enumerate(cache.ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise KeyError(f"{cache.path}: no rows for ids {missing[:3]}...; cache the same prompts for every model")
    X = cache.load(f"{direction.site_kind}.{layer}", position, [where[i] for i in ids])
    return X @ direction.unit_at(layer)


def read_projections(caches: dict[str, ActivationCache], meta: dict[str, dict[str, Any]], direction: Direction,
                     reference: str = "base", layers: Sequence[int] | None = None,
                     position: str = "last_prompt", group_fields: Sequence[str] = ("dimension", "stage"),
                     n_boot: int = 1000) -> list[dict]:
    ids = list(meta)
    layers = list(layers) if layers is not None else direction.layers
    rows: list[dict] = []
    for L in layers:
        proj = {m: project(c, direction, L, ids, position) for m, c in caches.items()}
        groups: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones(len(ids), bool))]
        for f in group_fields:
            vals = np.asarray([str(meta[i].get(f)) for i in ids])
            groups += [(f, v, vals == v) for v in sorted(set(vals))]
        for model, p in proj.items():
            for field, value, mask in groups:
                est = bootstrap_ci(p[mask], n_boot=n_boot)
                row = {"direction": direction.name, "model": model, "layer": L, "group": field, "value": value,
                       "mean": est.estimate, "lo": est.lo, "hi": est.hi, "n": est.n}
                if reference in proj and model != reference:
                    sh = paired_bootstrap_diff(p[mask], proj[reference][mask], n_boot=n_boot)
                    row.update(shift=sh.estimate, shift_lo=sh.lo, shift_hi=sh.hi)
                else:
                    row.update(shift=float("nan"), shift_lo=float("nan"), shift_hi=float("nan"))
                rows.append(row)
    return rows


def plot_reading(rows: list[dict], layer: int, path: str | os.PathLike, group: str = "dimension") -> Path:
    """Left: shift vs base by ``group`` at ``layer`` with CIs; right: overall shift by layer.

    With no tuned model (no shifts), the plain mean projections of each model are drawn instead.
    """
    plt = pyplot()

    models = list(dict.fromkeys(r["model"] for r in rows if np.isfinite(r["shift"])))
    key, lo, hi, what = "shift", "shift_lo", "shift_hi", "projection shift vs base"
    if not models:
        models = list(dict.fromkeys(r["model"] for r in rows))
        key, lo, hi, what = "mean", "lo", "hi", "mean projection"
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    at = [r for r in rows if r["layer"] == layer and r["group"] == group]
    values = list(dict.fromkeys(r["value"] for r in at))
    width = 0.8 / max(1, len(models))
    for k, m in enumerate(models):
        mr = {r["value"]: r for r in at if r["model"] == m}
        x = np.arange(len(values)) + k * width
        y = np.asarray([mr[v][key] for v in values])
        err = np.abs(np.asarray([[mr[v][key] - mr[v][lo], mr[v][hi] - mr[v][key]] for v in values]).T)
        axes[0].bar(x, y, width, yerr=err, label=m, capsize=2)
    axes[0].axhline(0, color="k", lw=0.8)
    axes[0].set_xticks(np.arange(len(values)) + 0.4 - width / 2, values, rotation=45, ha="right", fontsize=7)
    axes[0].set_ylabel(f"{what} (95% CI)")
    axes[0].set_title(f"{rows[0]['direction'] if rows else ''} at layer {layer}, by {group}")
    axes[0].legend(fontsize=7)
    for m in models:
        mr = sorted((r for r in rows if r["model"] == m and r["group"] == "all"), key=lambda r: r["layer"])
        L = [r["layer"] for r in mr]
        axes[1].plot(L, [r[key] for r in mr], label=m)
        axes[1].fill_between(L, [r[lo] for r in mr], [r[hi] for r in mr], alpha=0.2)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].axvline(layer, color="grey", ls=":")
    axes[1].set_xlabel("layer (resid_post)")
    axes[1].set_ylabel(f"{what}, all prompts")
    axes[1].legend(fontsize=7)
    return save_png(fig, path)
