"""Bar charts of preference dimensions (style and saving: ``artifacts.figures``).

- ``grouped_bars(rows, path, ...)``: categories (dimensions, or stages) on the x axis, ordered, grouped and shaded
  by cascade stage, one bar per group (model) with 95% CI whiskers; the analysis report's shift charts;
- ``plot_dimensions(summary, path, scorer)``: the evals stage's chart of ``evals.results.summarize`` rows
  (mean score per dimension and model, 95% CI).

NaN estimates are drawn as gaps (no bar), never as zero.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from artifacts.figures import HIGHER, STAGE_SHADES, bars, legend_outside, new_figure, save_figure, zero_line
from evals.dimensions import DIMENSIONS, STAGES

STAGE_NAMES = {k: f"Stage {k}: {v}" for k, v in STAGES.items()}
UNITS = {"continuation": "log p(preferring) - log p(rejecting), nats/token", "choice": "P(preference letter)",
         "judged": "pass rate"}


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _order(values, given=None) -> list:
    seen = list(dict.fromkeys(values))
    if given is None:
        return seen
    return [v for v in given if v in seen] + [v for v in seen if v not in given]


def grouped_bars(rows: Sequence[dict], out_path: str | os.PathLike, *, category: str = "dimension",
                 group: str = "model", value: str = "shift_pp", lo: str | None = None, hi: str | None = None,
                 stage: str | None = "stage", title: str | None = None, ylabel: str | None = None,
                 category_order: Sequence | None = None, group_order: Sequence | None = None,
                 stage_names: dict | None = None, category_labels: dict | None = None,
                 reference: float | None = None) -> Path:
    """Bars of ``value`` per ``category`` (x axis) and ``group`` (one bar each), whiskers from ``lo``/``hi``
    (default ``<value>_lo``/``<value>_hi``). With ``stage``, categories are ordered and shaded by stage.
    ``category_labels``: tick text per category (dimensions: their titles and ``DIMENSIONS`` order by default);
    ``reference``: a dashed line at that value (e.g. chance)."""
    lo, hi = lo or f"{value}_lo", hi or f"{value}_hi"
    rows = [r for r in rows if category in r and group in r]
    if not rows:
        raise ValueError(f"grouped_bars: no rows with fields {category!r} and {group!r}")
    stage_of: dict[Any, int] = {}
    if stage:
        for r in rows:
            if r.get(stage) is not None:
                stage_of.setdefault(r[category], int(r[stage]))
    if category == "dimension":  # the dimensions' own order and titles unless told otherwise
        category_order = list(DIMENSIONS) if category_order is None else category_order
        category_labels = {k: d.title for k, d in DIMENSIONS.items()} if category_labels is None else category_labels
    cats = _order([r[category] for r in rows], category_order)
    if stage_of:
        cats.sort(key=lambda c: stage_of.get(c, 99))  # stable: keeps the given order within a stage
    groups = _order([r[group] for r in rows], group_order)
    # x positions with a gap between stages
    xs, x, prev = [], 0.0, None
    for c in cats:
        s = stage_of.get(c)
        if prev is not None and s != prev:
            x += 0.6
        xs.append(x)
        x, prev = x + 1.0, s
    xs = np.array(xs)
    table: dict = {}
    for r in rows:
        key = (r[category], r[group])
        if key in table:
            raise ValueError(f"grouped_bars: two rows for {category}={key[0]!r}, {group}={key[1]!r}; filter the "
                             "rows to one scorer (or other extra key) first")
        table[key] = r
    fig, ax = new_figure(size=(min(16.0, max(6.0, 0.35 * len(cats) * max(1.5, len(groups) * 0.6) + 2)), 4.8))
    names = {**STAGE_NAMES, **(stage_names or {})}
    for s in sorted(set(stage_of.values())):
        idx = [i for i, c in enumerate(cats) if stage_of.get(c) == s]
        ax.axvspan(xs[idx[0]] - 0.5, xs[idx[-1]] + 0.5, color=STAGE_SHADES.get(s, "#eeeeee"), zorder=0)
        ax.text((xs[idx[0]] + xs[idx[-1]]) / 2, 1.01, names.get(s, f"Stage {s}"), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8, fontweight="bold")
    series = {g: tuple([_f(table.get((c, g), {}).get(k)) for c in cats] for k in (value, lo, hi)) for g in groups}
    bars(ax, xs, series)
    zero_line(ax)
    if reference is not None:
        zero_line(ax, reference, color="grey", ls="--")
    ax.set_xticks(xs)
    if category == "stage":  # the stages themselves on the x axis: name them, no rotation needed
        ax.set_xticklabels([names.get(int(c), f"Stage {c}").replace(": ", "\n") for c in cats])
    else:
        labels = category_labels or {}
        ax.set_xticklabels([labels.get(c, str(c).replace("_", " ")) for c in cats], rotation=45, ha="right",
                           fontsize=7)
    ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylabel(ylabel or value)
    if title:
        ax.set_title(title, pad=18 if stage_of else None)
    legend_outside(ax, title=group)
    ax.grid(axis="x", visible=False)
    return save_figure(fig, out_path)


def plot_dimensions(summary: Sequence[dict[str, Any]], path: str | os.PathLike, scorer: str,
                    group: str = "model", title: str | None = None) -> Path:
    """Grouped bar chart of ``summarize`` rows: dimensions on the x axis (shaded by cascade stage), one bar per
    ``group`` value, 95% CI whiskers."""
    rows = [{**r, "stage": DIMENSIONS[r["dimension"]].stage if r["dimension"] in DIMENSIONS else None}
            for r in summary if r["scorer"] == scorer and "dimension" in r]
    if not rows:
        raise ValueError(f"plot_dimensions: no summary rows for scorer {scorer!r}")
    return grouped_bars(rows, path, group=group, value="estimate", lo="lo", hi="hi",
                        group_order=sorted({r[group] for r in rows}, key=str), reference=0.5 if scorer == "choice" else None,
                        ylabel=f"{UNITS.get(scorer, 'score')}\n({HIGHER})",
                        title=title or f"Emergent preferences per dimension ({scorer} scorer; 95% CI)")
