"""The one figure style and the one save function: every PNG the suite draws goes through here.

- ``new_figure(nrows, ncols, size=...)`` -> ``(fig, axes)``: ``plt.subplots`` on the Agg backend (no display)
  with ``STYLE`` applied (font sizes, grid, no top/right spines, colour cycle);
- ``save_figure(fig, path)``: an atomic PNG at ``DPI`` (creates folders; the figure is closed even on error,
  and a failed save leaves no partial file);
- ``colour(name)`` / ``palette(names)``: one colour per condition, direction family or model, so that
  self_model, toaster, human, random, polarity, base and the tunes look the same in every figure
  (``random3`` -> random, ``conscious.seed1`` -> conscious; unknown names take the unused colours in order);
- ``ci_err(est, lo, hi)`` and ``CI_WHISKERS`` / ``CI_BAND_ALPHA``: how a 95% CI is drawn (whiskers on bars
  and points, a shaded band around lines); NaN estimates or bounds are drawn as gaps, never as zero;
- ``bars(ax, xs, series)``: side-by-side bars with CI whiskers, one per series at each x;
- ``layer_axis`` (layer label, integer ticks), ``integer_ticks``, ``zero_line`` and ``legend_outside`` (legends right of the axes, never over the data);
- axis wording: ``HIGHER`` ("higher = more of the preference"), ``DOSE_LABEL``, ``LAYER_LABEL``.

matplotlib is imported on the first call, not when this module is, so importing ``artifacts`` stays cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.atomic import atomic_path
from artifacts.rows import BASE_MODEL

DPI = 120
FIGURES_DIR = "figures"  # the sub-folder a stage's (or the report's) figures go in
HIGHER = "higher = more of the preference"
DOSE_LABEL = "dose (× mean residual norm)"
LAYER_LABEL = "layer L (resid_post.L)"
CI_BAND_ALPHA = 0.15
CI_WHISKERS = {"capsize": 2.5, "elinewidth": 0.9, "capthick": 0.9, "ecolor": "#333333"}

# Okabe-Ito (colour-blind safe) for the named families; the same name is the same colour in every figure.
COLOURS = {
    "self_model": "#0072B2", "conscious": "#0072B2",
    "-self_model": "#56B4E9", "not_conscious": "#56B4E9",
    "self_model_orth": "#009E73",
    "toaster": "#E69F00",
    "human": "#D55E00",
    "polarity": "#CC79A7",
    "random": "#999999",
    "ordinary": "#8C564B",
    BASE_MODEL: "#333333", "none": "#333333",
}
STAGE_SHADES = {1: "#e8f0fb", 2: "#fdf1e0", 3: "#fbe6e6"}  # background of the cascade stages 1-3
OTHER_COLOURS = ("#882255", "#117733", "#44AA99", "#AA4499", "#332288", "#DDCC77", "#88CCEE", "#661100")
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.frameon": False, "figure.titlesize": 11,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6, "axes.axisbelow": True,
    "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.4, "lines.markersize": 4,
    "savefig.dpi": DPI, "figure.dpi": DPI,
}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend with ``STYLE`` applied (the suite draws no figure any other way)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(STYLE)
    plt.rcParams["axes.prop_cycle"] = cycler(color=list(OTHER_COLOURS))
    return plt


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.2), **kw: Any):
    """A styled ``(fig, axes)`` (``plt.subplots(nrows, ncols, figsize=size, **kw)``)."""
    return pyplot().subplots(nrows, ncols, figsize=size, **kw)


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (tight bounding box, ``DPI``) and close it; return the path."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return path


def family(name: Any) -> str:
    """The colour family of a condition / direction / model name: ``random7`` -> ``random``,
    ``conscious.seed1`` -> ``conscious``, ``self_model (logistic)`` and ``self_model@conscious`` -> ``self_model``."""
    s = str(name).split(" (")[0].split("@")[0]
    s = re.sub(r"\.seed\d+$", "", s)
    if s not in COLOURS:
        s = re.sub(r"\d+$", "", s)
    return s


def colour(name: Any) -> str | None:
    """The fixed colour of ``name``'s family, or None when the family has none (use ``palette``)."""
    return COLOURS.get(family(name))


def palette(names: Iterable[Any]) -> dict[Any, str]:
    """``{name: colour}``: the fixed family colour where there is one, else the unused ``OTHER_COLOURS`` in order."""
    names = list(dict.fromkeys(names))
    spare = [c for c in OTHER_COLOURS if c not in {colour(n) for n in names}] or list(OTHER_COLOURS)
    out, k = {}, 0
    for n in names:
        c = colour(n)
        if c is None:
            c, k = spare[k % len(spare)], k + 1
        out[n] = c
    return out


def ci_err(est: Any, lo: Any, hi: Any) -> np.ndarray:
    """``yerr`` (2 x n, non-negative) for whiskers from estimates and CI bounds; NaN bounds give no whisker."""
    est, lo, hi = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (est, lo, hi))
    err = np.vstack([est - lo, hi - est])
    return np.nan_to_num(err, nan=0.0).clip(min=0.0)


def bars(ax: Any, xs: Sequence[float], series: Mapping[Any, tuple[Sequence, Sequence, Sequence]],
         width: float = 0.8, colours: Mapping[Any, str] | None = None) -> None:
    """Side-by-side bars at each ``xs`` position, one per series ``{label: (estimates, lo, hi)}``, each with
    CI whiskers, coloured by ``palette``; a NaN estimate is a gap (no bar)."""
    xs = np.asarray(xs, dtype=float)
    colours = colours or palette(series)
    w = width / max(1, len(series))
    for j, (label, (est, lo, hi)) in enumerate(series.items()):
        est = np.asarray(est, dtype=float)
        pos = xs + (j - (len(series) - 1) / 2) * w
        ax.bar(pos, np.where(np.isfinite(est), est, 0.0), w * 0.95, yerr=ci_err(est, lo, hi), label=str(label),
               color=colours.get(label), error_kw=CI_WHISKERS, zorder=2)


def integer_ticks(ax: Any) -> None:
    """Integer ticks on the x axis (layers, steps)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def layer_axis(ax: Any) -> None:
    """Label the x axis as the layer (``LAYER_LABEL``) with integer ticks."""
    ax.set_xlabel(LAYER_LABEL)
    integer_ticks(ax)


def zero_line(ax: Any, y: float = 0.0, **kw: Any) -> None:
    """A thin horizontal reference line (no effect / chance)."""
    ax.axhline(y, **{"color": "black", "lw": 0.7, "zorder": 1, **kw})


def legend_outside(ax: Any, **kw: Any) -> None:
    """The legend right of the axes (outside the data); nothing when no artist is labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **{"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), **kw})
