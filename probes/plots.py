"""PNG plots of probe results: accuracy and AUROC by layer, per direction and probe (style: ``artifacts.figures``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from artifacts.figures import (
    CI_BAND_ALPHA,
    layer_axis,
    legend_outside,
    new_figure,
    palette,
    save_figure,
    zero_line,
)
from probes.directions import Direction


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
