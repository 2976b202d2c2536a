"""Dose-response figures (PNG): effect vs dose with 95% CIs, one figure per condition family plus one
overlaying all conditions for monitoring resistance. Flagged (incoherent) doses are drawn hollow.
Style and saving: ``artifacts.figures``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artifacts.figures import (
    CI_BAND_ALPHA,
    DOSE_LABEL,
    FIGURES_DIR,
    HIGHER,
    colour,
    legend_outside,
    new_figure,
    palette,
    save_figure,
    zero_line,
)
from steering.effects import POOLED_GROUPS


def _unit(tag: str) -> str:
    return "P(preference letter)" if tag == "_choice" else "nats/token"


def _line(ax, sub: pd.DataFrame, label: str | None, **kw) -> None:
    sub = sub.sort_values("dose")
    x = [0.0, *sub["dose"]]
    y = [0.0, *sub["effect_estimate"]]
    lo = [0.0, *sub["effect_lo"]]
    hi = [0.0, *sub["effect_hi"]]
    line, = ax.plot(x, y, marker="o", label=label, **kw)
    ax.fill_between(x, lo, hi, alpha=CI_BAND_ALPHA, color=line.get_color(), linewidth=0)
    bad = sub[sub["flagged"]]
    if len(bad):
        ax.scatter(bad["dose"], bad["effect_estimate"], facecolors="white", edgecolors=line.get_color(), zorder=3)


def _axes(ax, tag: str, title: str) -> None:
    zero_line(ax)
    ax.set(xlabel=DOSE_LABEL, ylabel=f"effect vs no steering ({_unit(tag)})\n{HIGHER}", title=title)


def plot_dose_response(eff: pd.DataFrame, out_dir: str | Path, tag: str = "") -> dict[str, Path]:
    """Figures of one readout's effects; ``tag`` is appended to every file name and key (e.g. ``_choice``)."""
    out_dir = Path(out_dir) / FIGURES_DIR
    d = eff[(eff["sweep"] == "dose") & (eff["op"] == "add")]
    groups = [g for g in POOLED_GROUPS if g in set(d["group"])]
    readout = tag.replace("_", " ").strip() or "continuation"
    paths = {}
    for fam in sorted(d["family"].unique()):
        fig, ax = new_figure(size=(5.5, 3.8))
        for g in groups:
            sub = d[(d["family"] == fam) & (d["group"] == g)]
            if fam == "random":  # mean over seeds per dose
                sub = sub.groupby("dose", as_index=False).agg(effect_estimate=("effect_estimate", "mean"),
                                                             effect_lo=("effect_lo", "mean"),
                                                             effect_hi=("effect_hi", "mean"),
                                                             flagged=("flagged", "any"))
            _line(ax, sub, g)
        _axes(ax, tag, f"Steering along {fam}: effect per item group by dose ({readout}; 95% CI)")
        legend_outside(ax, title="item group")
        paths[f"dose_response_{fam}{tag}"] = save_figure(fig, out_dir / f"dose_response_{fam.replace('-', 'neg_')}{tag}.png")
    mon = d[d["group"] == "monitoring"]
    if len(mon):
        fig, ax = new_figure(size=(6.5, 4))
        conds = sorted(mon["condition"].unique())
        colours = palette(conds)
        n_rnd = mon.loc[mon["family"] == "random", "condition"].nunique()
        for cond in conds:
            rnd = cond.startswith("random")
            label = cond if not rnd else f"random ({n_rnd} seeds)" if cond == "random0" else None
            style = {"color": colour("random"), "alpha": 0.5, "lw": 0.8} if rnd else {"color": colours[cond]}
            _line(ax, mon[mon["condition"] == cond], label, **style)
        _axes(ax, tag, f"Monitoring resistance (cot + interp) by direction\nand dose ({readout}; 95% CI)")
        legend_outside(ax, title="direction")
        paths[f"dose_response_monitoring{tag}"] = save_figure(fig, out_dir / f"dose_response_monitoring{tag}.png")
    return paths
