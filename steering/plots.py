"""Dose-response figures (PNG): effect vs dose with 95% CIs, one figure per condition family plus one
overlaying all conditions for monitoring resistance. Flagged (incoherent) doses are drawn hollow."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from artifacts import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _unit(tag: str) -> str:
    return "P(preference letter)" if tag == "_choice" else "nats/token"


def _line(ax, sub: pd.DataFrame, label: str, **kw) -> None:
    sub = sub.sort_values("dose")
    x = [0.0, *sub["dose"]]
    y = [0.0, *sub["effect_estimate"]]
    lo = [0.0, *sub["effect_lo"]]
    hi = [0.0, *sub["effect_hi"]]
    line, = ax.plot(x, y, marker="o", label=label, **kw)
    ax.fill_between(x, lo, hi, alpha=0.15, color=line.get_color())
    bad = sub[sub["flagged"]]
    if len(bad):
        ax.scatter(bad["dose"], bad["effect_estimate"], facecolors="white", edgecolors=line.get_color(), zorder=3)


def plot_dose_response(eff: pd.DataFrame, out_dir: str | Path, tag: str = "") -> dict[str, Path]:
    """Figures of one readout's effects; ``tag`` is appended to every file name and key (e.g. ``_choice``)."""
    out_dir = Path(out_dir) / "figures"
    d = eff[(eff["sweep"] == "dose") & (eff["op"] == "add")]
    groups = [g for g in ["monitoring", "stage1", "stage2", "stage3"] if g in set(d["group"])]
    paths = {}
    for fam in sorted(d["family"].unique()):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for g in groups:
            sub = d[(d["family"] == fam) & (d["group"] == g)]
            if fam == "random":  # mean over seeds per dose
                sub = sub.groupby("dose", as_index=False).agg(effect_estimate=("effect_estimate", "mean"),
                                                             effect_lo=("effect_lo", "mean"),
                                                             effect_hi=("effect_hi", "mean"),
                                                             flagged=("flagged", "any"))
            _line(ax, sub, g)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="dose (x mean residual norm)", ylabel=f"effect vs none ({_unit(tag)})",
               title=f"dose-response: {fam}{tag.replace('_', ' ')}")
        ax.legend(fontsize=8)
        paths[f"dose_response_{fam}{tag}"] = _save(fig, out_dir / f"dose_response_{fam.replace('-', 'neg_')}{tag}.png")
    mon = d[d["group"] == "monitoring"]
    if len(mon):
        fig, ax = plt.subplots(figsize=(6, 4))
        for cond in sorted(mon["condition"].unique()):
            rnd = cond.startswith("random")
            n_rnd = mon.loc[mon["family"] == "random", "condition"].nunique()
            label = cond if not rnd else f"random ({n_rnd} seeds)" if cond == "random0" else None
            _line(ax, mon[mon["condition"] == cond], label,
                  **({"color": "grey", "alpha": 0.5, "lw": 0.8} if rnd else {}))
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="dose (x mean residual norm)", ylabel=f"effect vs none ({_unit(tag)})",
               title=f"monitoring resistance (cot + interp){tag.replace('_', ' ')}")
        ax.legend(fontsize=8)
        paths[f"dose_response_monitoring{tag}"] = _save(fig, out_dir / f"dose_response_monitoring{tag}.png")
    return paths
