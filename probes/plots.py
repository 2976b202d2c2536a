"""PNG plots of probe results (style and saving: ``artifacts.figures``): accuracy and AUROC by layer per direction and
probe, the cosine matrix of the directions, and the reading of a direction (projection shifts by group and layer)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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
from probes.geometry import cosine_matrix


def plot_layer_curves(directions: list[Direction], path: str | os.PathLike, title: str = "") -> Path:
    """Held-out-family accuracy (left) and AUROC (right) by layer, 95% cluster-bootstrap bands.

    One colour per direction family, solid = mean_diff, dashed = logistic; dotted vertical = selected layer.
    """
    fig, axes = new_figure(1, 2, size=(12, 4.2), sharex=True)
    styles = {"mean_diff": "-", "logistic": "--"}
    colours = palette(d.name for d in directions)
    for d in directions:
        colour = colours[d.name]
        per = d.metrics.get("per_layer", {})
        for probe, m in per.items():
            for ax, key in zip(axes, ("accuracy", "auroc")):
                y = np.asarray(m[key], dtype=float)
                ax.plot(d.layers, y, styles.get(probe, ":"), color=colour, label=f"{d.name} ({probe})")
                ax.fill_between(d.layers, np.asarray(m[f"{key}_lo"], dtype=float),
                                np.asarray(m[f"{key}_hi"], dtype=float), color=colour, alpha=CI_BAND_ALPHA / 2,
                                linewidth=0)
        if "selected_layer" in d.metrics:
            for ax in axes:
                ax.axvline(d.metrics["selected_layer"], color=colour, ls=":", lw=0.8)
    for ax, key in zip(axes, ("accuracy", "AUROC")):
        zero_line(ax, 0.5, ls="--", color="grey")
        ax.set_ylim(0.3, 1.02)
        layer_axis(ax)
        ax.set_ylabel(f"held-out-family {key} (chance = 0.5)")
        ax.set_title(f"Probe {key} on held-out families, by layer (95% CI)")
    legend_outside(axes[1], fontsize=7, title="direction (probe)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_cosine_heatmap(directions: list[Direction], layer: int, path: str | os.PathLike) -> Path:
    """Cosine similarity of every pair of directions at ``resid_post.layer`` (diverging colours, -1..1)."""
    M = cosine_matrix(directions, layer)
    names = [d.name for d in directions]
    k = len(names)
    fig, ax = new_figure(size=(max(6.0, 2.0 + 0.55 * k), max(5.0, 1.6 + 0.5 * k)))
    im = ax.imshow(M, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.grid(False)
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    if k <= 16:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(M[i, j]) > 0.7 else "black")
    ax.set_title(f"Cosine similarity between directions at resid_post.{layer}")
    fig.colorbar(im, ax=ax, shrink=0.8, label="cosine")
    return save_figure(fig, path)


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
