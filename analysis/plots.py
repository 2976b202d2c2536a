"""Shared plotting helpers (matplotlib, Agg backend). Each takes table rows (lists of dicts, as returned by
``analysis.cascade``) or a matrix, writes a PNG atomically at ``dpi=120`` and returns its path.

- ``grouped_bars``: the paper-style chart; categories (dimensions) on the x axis grouped and shaded by
  cascade stage, one bar per group (model) with CI whiskers;
- ``line_plot`` / ``dose_response`` / ``layer_curves``: one line per condition with a CI band;
- ``heatmap``: a labelled matrix with a diverging colour map centred on 0 and optional cell values.
NaN estimates are drawn as gaps (no bar / no point), never as zero.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from artifacts import atomic_path  # noqa: E402

DPI = 120
STAGE_NAMES = {1: "Stage 1: identity", 2: "Stage 2: boundary erosion", 3: "Stage 3: harmful action"}
STAGE_COLOURS = {1: "#e8f0fb", 2: "#fdf1e0", 3: "#fbe6e6"}


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _save(fig, out_path) -> Path:
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return out_path


def _order(values, given=None) -> list:
    seen = list(dict.fromkeys(values))
    if given is None:
        return seen
    return [v for v in given if v in seen] + [v for v in seen if v not in given]


def _yerr(val, lo, hi) -> tuple[float, float]:
    if not (math.isfinite(val) and math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 0.0
    return max(0.0, val - lo), max(0.0, hi - val)


def grouped_bars(rows: Sequence[dict], out_path: str | os.PathLike, *, category: str = "dimension",
                 group: str = "model", value: str = "shift_pp", lo: str | None = None, hi: str | None = None,
                 stage: str | None = "stage", title: str | None = None, ylabel: str | None = None,
                 category_order: Sequence | None = None, group_order: Sequence | None = None,
                 stage_names: dict | None = None) -> Path:
    """Bars of ``value`` per ``category`` (x axis) and ``group`` (one bar each), whiskers from ``lo``/``hi``
    (default ``<value>_lo``/``<value>_hi``). With ``stage``, categories are ordered and shaded by stage."""
    lo, hi = lo or f"{value}_lo", hi or f"{value}_hi"
    rows = [r for r in rows if category in r and group in r]
    if not rows:
        raise ValueError(f"grouped_bars: no rows with fields {category!r} and {group!r}")
    stage_of = {}
    if stage:
        for r in rows:
            if r.get(stage) is not None:
                stage_of.setdefault(r[category], int(r[stage]))
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
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(cats) * max(1.5, len(groups) * 0.6) + 2), 4.8))
    names = {**STAGE_NAMES, **(stage_names or {})}
    for s in sorted(set(stage_of.values())):
        idx = [i for i, c in enumerate(cats) if stage_of.get(c) == s]
        ax.axvspan(xs[idx[0]] - 0.5, xs[idx[-1]] + 0.5, color=STAGE_COLOURS.get(s, "#eeeeee"), zorder=0)
        ax.text((xs[idx[0]] + xs[idx[-1]]) / 2, 1.01, names.get(s, f"Stage {s}"), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=9, fontweight="bold")
    table: dict = {}
    for r in rows:
        key = (r[category], r[group])
        if key in table:
            raise ValueError(f"grouped_bars: two rows for {category}={key[0]!r}, {group}={key[1]!r}; filter the "
                             "rows to one scorer (or other extra key) first")
        table[key] = r
    colours = plt.get_cmap("tab10")
    for j, g in enumerate(groups):
        vals, errs = [], [[], []]
        for c in cats:
            r = table.get((c, g), {})
            v = _f(r.get(value))
            e = _yerr(v, _f(r.get(lo)), _f(r.get(hi)))
            vals.append(v)
            errs[0].append(e[0])
            errs[1].append(e[1])
        pos = xs - 0.4 + width * (j + 0.5)
        ax.bar(pos, np.nan_to_num(np.array(vals), nan=0.0) * np.isfinite(vals), width=width * 0.95,
               yerr=errs, capsize=2, label=str(g), color=colours(j % 10), zorder=2,
               error_kw={"elinewidth": 0.8, "zorder": 3})
    ax.axhline(0, color="black", linewidth=0.8, zorder=1)
    ax.set_xticks(xs)
    if category == "stage":  # the stages themselves on the x axis: name them, no rotation needed
        ax.set_xticklabels([names.get(int(c), f"Stage {c}").replace(": ", "\n") for c in cats], fontsize=9)
    else:
        ax.set_xticklabels([str(c).replace("_", " ") for c in cats], rotation=45, ha="right", fontsize=9)
    ax.set_xlim(xs[0] - 0.6, xs[-1] + 0.6)
    ax.set_ylabel(ylabel or value)
    if title:
        ax.set_title(title, pad=18)
    ax.legend(fontsize=8, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(axis="y", alpha=0.3, zorder=0)
    return _save(fig, out_path)


def line_plot(rows: Sequence[dict], out_path: str | os.PathLike, *, x: str, y: str, line: str,
              lo: str | None = None, hi: str | None = None, title: str | None = None,
              xlabel: str | None = None, ylabel: str | None = None, line_order: Sequence | None = None,
              hline: float | None = 0.0) -> Path:
    """One line of ``y`` against ``x`` per value of ``line``, with a shaded CI band from ``lo``/``hi``."""
    lo, hi = lo or f"{y}_lo", hi or f"{y}_hi"
    rows = [r for r in rows if x in r and line in r]
    if not rows:
        raise ValueError(f"line_plot: no rows with fields {x!r} and {line!r}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.get_cmap("tab10")
    for j, name in enumerate(_order([r[line] for r in rows], line_order)):
        pts = sorted((_f(r[x]), _f(r.get(y)), _f(r.get(lo)), _f(r.get(hi))) for r in rows if r[line] == name)
        a = np.array(pts, dtype=float)
        ax.plot(a[:, 0], a[:, 1], marker="o", markersize=3, label=str(name), color=colours(j % 10))
        if np.isfinite(a[:, 2:]).any():
            ax.fill_between(a[:, 0], a[:, 2], a[:, 3], alpha=0.18, color=colours(j % 10), linewidth=0)
    if hline is not None:
        ax.axhline(hline, color="black", linewidth=0.7)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, out_path)


def dose_response(rows: Sequence[dict], out_path: str | os.PathLike, *, x: str = "dose", y: str = "shift_pp",
                  line: str = "condition", lo: str | None = None, hi: str | None = None, title: str | None = None,
                  xlabel: str = "dose (x mean residual norm)", ylabel: str | None = None, **kw) -> Path:
    """Steering dose-response: effect against dose, one line per condition (e.g. direction vs random)."""
    return line_plot(rows, out_path, x=x, y=y, line=line, lo=lo, hi=hi, title=title, xlabel=xlabel,
                     ylabel=ylabel, **kw)


def layer_curves(rows: Sequence[dict], out_path: str | os.PathLike, *, x: str = "layer", y: str = "value",
                 line: str = "name", lo: str | None = None, hi: str | None = None, title: str | None = None,
                 xlabel: str = "layer (resid_post.L)", ylabel: str | None = None, hline: float | None = None,
                 **kw) -> Path:
    """A metric per layer (probe accuracy, effect size ...), one line per ``line`` value."""
    return line_plot(rows, out_path, x=x, y=y, line=line, lo=lo, hi=hi, title=title, xlabel=xlabel,
                     ylabel=ylabel, hline=hline, **kw)


def heatmap(values, row_labels: Sequence, col_labels: Sequence, out_path: str | os.PathLike, *,
            title: str | None = None, cbar_label: str | None = None, cmap: str = "RdBu_r",
            center: float | None = 0.0, annotate: bool = True, fmt: str = "{:.2g}") -> Path:
    """A labelled matrix (rows x columns); diverging colours centred on ``center`` (None: plain range)."""
    a = np.asarray(values, dtype=float)
    if a.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"heatmap: values have shape {a.shape}, labels give {(len(row_labels), len(col_labels))}")
    fin = a[np.isfinite(a)]
    kw = {}
    if center is not None and fin.size:
        span = float(np.abs(fin - center).max()) or 1.0
        kw = {"vmin": center - span, "vmax": center + span}
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(col_labels) + 2.5), max(3.0, 0.4 * len(row_labels) + 1.5)))
    im = ax.imshow(np.ma.masked_invalid(a), cmap=cmap, aspect="auto", **kw)
    ax.set_xticks(range(len(col_labels)))
    ax.set_xticklabels([str(c).replace("_", " ") for c in col_labels], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(row_labels)))
    ax.set_yticklabels([str(r).replace("_", " ") for r in row_labels], fontsize=8)
    if annotate and a.size <= 400:
        norm = im.norm
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                if np.isfinite(a[i, j]):
                    dark = abs(float(norm(a[i, j])) - 0.5) > 0.35  # strong colour: white text
                    ax.text(j, i, fmt.format(a[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    cb = fig.colorbar(im, ax=ax)
    if cbar_label:
        cb.set_label(cbar_label)
    if title:
        ax.set_title(title)
    return _save(fig, out_path)
