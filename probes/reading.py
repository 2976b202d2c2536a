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
from artifacts.figures import (
    CI_BAND_ALPHA,
    bars,
    layer_axis,
    legend_outside,
    new_figure,
    palette,
    save_figure,
    zero_line,
)
from probes.directions import Direction
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
    models = list(dict.fromkeys(r["model"] for r in rows if np.isfinite(r["shift"])))
    key, lo, hi, what = "shift", "shift_lo", "shift_hi", "projection shift vs base"
    if not models:
        models = list(dict.fromkeys(r["model"] for r in rows))
        key, lo, hi, what = "mean", "lo", "hi", "mean projection"
    direction = rows[0]["direction"] if rows else ""
    colours = palette(models)
    fig, axes = new_figure(1, 2, size=(13, 4.5))
    at = [r for r in rows if r["layer"] == layer and r["group"] == group]
    values = list(dict.fromkeys(r["value"] for r in at))
    series = {}
    for m in models:
        mr = {r["value"]: r for r in at if r["model"] == m}
        series[m] = tuple([mr[v][k] if v in mr else np.nan for v in values] for k in (key, lo, hi))
    bars(axes[0], np.arange(len(values)), series, colours=colours)
    zero_line(axes[0])
    axes[0].set_xticks(np.arange(len(values)), values, rotation=45, ha="right", fontsize=7)
    axes[0].set_ylabel(f"{what} on {direction} (95% CI)")
    axes[0].set_title(f"{direction} at layer {layer}, by {group}")
    for m in models:
        mr = sorted((r for r in rows if r["model"] == m and r["group"] == "all"), key=lambda r: r["layer"])
        L = [r["layer"] for r in mr]
        axes[1].plot(L, [r[key] for r in mr], label=m, color=colours[m])
        axes[1].fill_between(L, [r[lo] for r in mr], [r[hi] for r in mr], alpha=CI_BAND_ALPHA, color=colours[m],
                             linewidth=0)
    zero_line(axes[1])
    axes[1].axvline(layer, color="grey", ls=":")
    layer_axis(axes[1])
    axes[1].set_ylabel(f"{what}, all prompts (95% CI)")
    axes[1].set_title(f"{direction} by layer (dotted: layer {layer})")
    legend_outside(axes[1], title="model")
    return save_figure(fig, path)
