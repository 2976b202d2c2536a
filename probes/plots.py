"""PNG plots of probe results: accuracy and AUROC by layer, per direction and probe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from artifacts import atomic_path
from probes.directions import Direction


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike) -> Path:
    plt = pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)


def plot_layer_curves(directions: list[Direction], path: str | os.PathLike, title: str = "") -> Path:
    """Held-out-family accuracy (left) and AUROC (right) by layer, 95% cluster-bootstrap bands.

    One colour per direction, solid = mean_diff, dashed = logistic; dotted vertical = selected layer.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharex=True)
    styles = {"mean_diff": "-", "logistic": "--"}
    for k, d in enumerate(directions):
        colour = f"C{k % 10}"
        per = d.metrics.get("per_layer", {})
        for probe, m in per.items():
            for ax, key in zip(axes, ("accuracy", "auroc")):
                y = np.asarray(m[key], dtype=float)
                ax.plot(d.layers, y, styles.get(probe, ":"), color=colour, label=f"{d.name} ({probe})")
                ax.fill_between(d.layers, np.asarray(m[f"{key}_lo"], dtype=float),
                                np.asarray(m[f"{key}_hi"], dtype=float), color=colour, alpha=0.08)
        if "selected_layer" in d.metrics:
            for ax in axes:
                ax.axvline(d.metrics["selected_layer"], color=colour, ls=":", lw=0.8)
    for ax, key in zip(axes, ("held-out-family accuracy", "held-out-family AUROC")):
        ax.axhline(0.5, color="k", lw=0.6)
        ax.set_ylim(0.3, 1.02)
        ax.set_xlabel("layer (resid_post)")
        ax.set_ylabel(key)
    axes[1].legend(fontsize=6, loc="lower right")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)
