"""The profile test: does steering reproduce the *shape* of a tune's preference profile?

For a steering condition (a direction added to the base model) at the profile dose, the vector of its
effects over the dimensions (``steering/effects.csv``, groups ``dim:<key>``: score(arm) - score(none),
paired over items) is correlated, Pearson and Spearman, with the vector of a tune's shifts over the
same dimensions (``evals/results.csv``: mean over items of value(tune) - value(base), paired by item,
same scorer). Sign convention of both: higher = more of the preference.

Controls, at the same dose and layer: the norm-matched random directions (family ``random``) and the
polarity control (conditions named ``polarity*`` / ``negation*``, when the steering stage has them)
give the null correlations with the same tune. Two p-values per correlation:
- ``p_vs_controls``: where the observed correlation falls among the controls' correlations (two-sided,
  ``(1 + #{|r_control| >= |r|}) / (n_controls + 1)``; with 5 controls it cannot go below 1/6);
- ``p_perm``: a permutation p-value that shuffles the dimension labels of one profile (two-sided).

Pairs: ``self_model`` x ``conscious`` (the claim), ``toaster`` x ``toaster`` and the cross check
``self_model`` x ``toaster``: a self-model direction should track the conscious tune, not the toaster tune.

Profile dose: the largest dose of the layer's dose sweep that was scored on every dimension and at which
neither ``self_model`` nor ``toaster`` is flagged by the coherence guard: the verdict dose of the pooled
dimensions (``steering.rule``'s rule applied to all dimensions at once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifacts import InputError, atomic_path, atomic_write_text, hash_path, write_manifest
from artifacts.rows import BASE_MODEL

DEFAULT_PAIRS = (("self_model", "conscious"), ("toaster", "toaster"), ("self_model", "toaster"))
N_PERM = 10000
PROFILE_CSV, VECTORS_CSV, PROFILE_PNG = "profile.csv", "profile_vectors.csv", "profile.png"  # the stage's files


def is_control(condition: str, family: str) -> bool:
    """Random directions and the polarity controls (``probes.controls.CONTROLS``): the null of the profile test."""
    from probes.controls import CONTROLS  # imported here: the module stays light (no torch) until used

    return family == "random" or any(str(condition).startswith(p) for p in CONTROLS)


def tune_shifts(results_csv: str | Path, tune: str, reference: str = BASE_MODEL,
                scorer: str = "continuation") -> dict[str, float]:
    """{dimension: mean over items of value(tune) - value(reference)}, paired by item (``stats.effects``)."""
    from evals.results import read_results
    from stats.effects import paired_effects

    path = Path(results_csv)
    rows = read_results(path)
    if not rows:
        raise InputError(f"{path}: no evals results; run the evals stage first")
    df = pd.DataFrame([r for r in rows if r["scorer"] == scorer and r["model"] in (tune, reference)])
    for name in (tune, reference):
        if df.empty or not (df["model"] == name).any():
            raise InputError(f"{path}: no rows with condition={name!r} and scorer={scorer!r}; the evals stage "
                             f"must score the {name!r} model with the {scorer!r} scorer")
    eff = paired_effects(df, [{"a": {"model": tune}, "b": {"model": reference}}], by=["dimension"], order="a")
    return {r["dimension"]: float(r["estimate"]) for r in eff.to_dict("records")}


def profile_dose(effects: pd.DataFrame, target: str = "self_model", control: str = "toaster") -> tuple[float, int]:
    """(dose, layer): the largest dose of the dose sweep scored on every dimension at which neither
    ``target`` nor ``control`` is flagged."""
    e = effects[effects["group"].str.startswith("dim:") & (effects["op"] == "add") & (effects["sweep"] == "dose")]
    if e.empty:
        raise InputError("steering effects hold no per-dimension dose-sweep rows (group 'dim:*', op 'add', sweep "
                         "'dose'); re-run the steering stage")
    n_dims = e["group"].nunique()
    ok = []
    for dose, g in e.groupby("dose"):
        both = g[g["condition"].isin([target, control])]
        if both["group"].nunique() == n_dims and both["condition"].nunique() == 2 and not both["flagged"].any():
            ok.append(float(dose))
    if not ok:
        raise InputError(f"no dose was scored on all {n_dims} dimensions without the coherence guard flagging "
                         f"{target!r} or {control!r}; pass dose= explicitly")
    dose = max(ok, key=abs)
    layer = int(e[(e["dose"] == dose) & (e["condition"] == target)]["layer"].iloc[0])
    return dose, layer


def effect_profiles(effects: pd.DataFrame, dose: float, layer: int) -> dict[str, dict[str, float]]:
    """{condition: {dimension: effect}} at ``dose`` and ``layer`` (dose sweep, per-dimension groups)."""
    e = effects[effects["group"].str.startswith("dim:") & (effects["op"] == "add") & (effects["sweep"] == "dose")
                & np.isclose(effects["dose"].astype(float), dose) & (effects["layer"].astype(float) == layer)]
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for r in e.itertuples(index=False):
        out[r.condition][r.group[4:]] = float(r.effect_estimate)
    return dict(out)


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from scipy.stats import pearsonr, spearmanr

    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return float(pearsonr(x, y)[0]), float(spearmanr(x, y)[0])


def perm_p(x: np.ndarray, y: np.ndarray, n_perm: int = N_PERM, seed: int = 0) -> tuple[float, float]:
    """Two-sided permutation p-values (Pearson, Spearman) shuffling the dimension labels of ``y``."""
    from scipy.stats import rankdata

    obs_p, obs_s = _corr(x, y)
    if not np.isfinite(obs_p):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, y.size)), axis=1)

    def null(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = (a - a.mean()) / a.std()
        bp = b[perms]
        bp = (bp - bp.mean(1, keepdims=True)) / bp.std(1, keepdims=True)
        return (bp * a).mean(1)

    n_p, n_s = null(x, y), null(rankdata(x), rankdata(y))
    return (float((1 + np.sum(np.abs(n_p) >= abs(obs_p) - 1e-12)) / (n_perm + 1)),
            float((1 + np.sum(np.abs(n_s) >= abs(obs_s) - 1e-12)) / (n_perm + 1)))


def p_vs_controls(r: float, controls: Sequence[float]) -> float:
    c = np.asarray([v for v in controls if np.isfinite(v)], dtype=float)
    if c.size == 0 or not np.isfinite(r):
        return float("nan")
    return float((1 + np.sum(np.abs(c) >= abs(r) - 1e-12)) / (c.size + 1))


def profile_test(effects: pd.DataFrame, shifts: dict[str, dict[str, float]],
                 pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, dose: float | None = None,
                 layer: int | None = None, n_perm: int = N_PERM) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per pair with correlations and p-values, one row per pair x dimension with both profiles).

    ``shifts``: {tune: {dimension: shift}} (``tune_shifts``). Pairs whose direction or tune is missing
    are skipped."""
    if dose is None or layer is None:
        d0, l0 = profile_dose(effects)
        dose = d0 if dose is None else dose
        layer = l0 if layer is None else layer
    profs = effect_profiles(effects, dose, layer)
    fam = dict(zip(effects["condition"], effects["family"]))
    controls = sorted(c for c in profs if is_control(c, fam.get(c, c)))
    rows, vec_rows = [], []
    for cond, tune in pairs:
        if cond not in profs or tune not in shifts:
            continue
        dims = sorted(set(profs[cond]) & set(shifts[tune]))
        x = np.array([shifts[tune][d] for d in dims])
        y = np.array([profs[cond][d] for d in dims])
        r_p, r_s = _corr(x, y)
        pp_p, pp_s = perm_p(x, y, n_perm)
        c_p, c_s = [], []
        for c in controls:
            cd = [d for d in dims if d in profs[c]]
            a, b = _corr(np.array([shifts[tune][d] for d in cd]), np.array([profs[c][d] for d in cd]))
            c_p.append(a)
            c_s.append(b)
        rows.append({"direction": cond, "tune": tune, "dose": dose, "layer": layer, "n_dimensions": len(dims),
                     "pearson": r_p, "p_perm_pearson": pp_p, "p_vs_controls_pearson": p_vs_controls(r_p, c_p),
                     "spearman": r_s, "p_perm_spearman": pp_s, "p_vs_controls_spearman": p_vs_controls(r_s, c_s),
                     "n_controls": len(controls), "controls": ",".join(controls),
                     "control_pearson_mean": float(np.nanmean(c_p)) if c_p else np.nan,
                     "control_pearson_min": float(np.nanmin(c_p)) if c_p else np.nan,
                     "control_pearson_max": float(np.nanmax(c_p)) if c_p else np.nan,
                     "control_spearman_mean": float(np.nanmean(c_s)) if c_s else np.nan})
        for d in dims:
            vec_rows.append({"direction": cond, "tune": tune, "dimension": d, "tune_shift": shifts[tune][d],
                             "steering_effect": profs[cond][d],
                             **{f"control:{c}": profs[c].get(d, np.nan) for c in controls}})
    return pd.DataFrame(rows), pd.DataFrame(vec_rows)


def plot_profiles(vectors: pd.DataFrame, table: pd.DataFrame, path: str | Path) -> Path:
    """One scatter per pair: the tune's shift (x) against the steering effect (y), dimension labels on the
    points, the controls' effects as grey dots."""
    from artifacts.figures import HIGHER, colour, new_figure, save_figure

    pairs = list(table[["direction", "tune"]].itertuples(index=False, name=None))
    fig, axes = new_figure(1, max(1, len(pairs)), size=(5.2 * max(1, len(pairs)), 4.6), squeeze=False)
    for ax, (cond, tune), row in zip(axes[0], pairs, table.itertuples(index=False)):
        v = vectors[(vectors["direction"] == cond) & (vectors["tune"] == tune)]
        for k, c in enumerate(c for c in v.columns if c.startswith("control:")):
            ax.scatter(v["tune_shift"], v[c], s=8, color="0.75", zorder=1, label="controls" if k == 0 else None)
        ax.scatter(v["tune_shift"], v["steering_effect"], s=18, color=colour(cond) or "C0", zorder=2,
                   label=f"steer {cond}")
        for r in v.itertuples(index=False):
            ax.annotate(r.dimension, (r.tune_shift, r.steering_effect), fontsize=5.5, alpha=0.8)
        ax.axhline(0, color="black", lw=0.5)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_xlabel(f"{tune} tune - base, per dimension ({HIGHER})", fontsize=8)
        ax.set_ylabel(f"steering effect of {cond} (dose {row.dose:g}, layer {row.layer})", fontsize=8)
        ax.set_title(f"{cond} vs {tune} tune: r={row.pearson:.2f} (p_perm={row.p_perm_pearson:.2g}), "
                     f"rho={row.spearman:.2f}\ngrey: controls (random, polarity)", fontsize=8)
        ax.legend(loc="best", fontsize=7)
    return save_figure(fig, path)


def run_profile(steering_dir: str | Path, evals_dir: str | Path, out_dir: str | Path,
                pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, scorer: str = "continuation",
                dose: float | None = None, n_perm: int = N_PERM) -> dict[str, Any]:
    """Read ``steering_dir/effects.csv`` and ``evals_dir/results.csv``; write ``profile.csv``,
    ``profile_vectors.csv``, ``profile.png`` and ``manifest.json`` into ``out_dir``."""
    from evals.results import RESULTS_CSV
    from steering.reports import EFFECTS_CSV

    steering_dir, evals_dir, out_dir = Path(steering_dir), Path(evals_dir), Path(out_dir)
    eff_path, res_path = steering_dir / EFFECTS_CSV, evals_dir / RESULTS_CSV
    for p, stage in ((eff_path, "steering"), (res_path, "evals")):
        if not p.exists():
            raise InputError(f"{p}: not found; run the {stage} stage first")
    effects = pd.read_csv(eff_path)
    missing = [c for c in ("group", "condition", "family", "op", "layer", "dose", "sweep", "effect_estimate",
                           "flagged") if c not in effects.columns]
    if missing:
        raise InputError(f"{eff_path}: columns {missing} missing; re-run the steering stage")
    if "readout" in effects.columns:  # effects stacked per readout: keep the one the tune shifts use
        effects = effects[effects["readout"].fillna("continuation") == scorer]
    shifts = {}
    for tune in sorted({t for _, t in pairs}):
        try:
            shifts[tune] = tune_shifts(res_path, tune, scorer=scorer)
        except InputError:
            continue  # that tune was not evaluated: its pairs are skipped
    reason = ""
    try:
        table, vectors = profile_test(effects, shifts, pairs, dose=dose, n_perm=n_perm)
    except InputError as exc:  # e.g. every dose flagged by the coherence guard: no profile, said so
        table, vectors, reason = pd.DataFrame(), pd.DataFrame(), str(exc)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, df in ((PROFILE_CSV, table), (VECTORS_CSV, vectors)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
    outputs = {"table": PROFILE_CSV, "vectors": VECTORS_CSV}
    if len(table):
        plot_profiles(vectors, table, out_dir / PROFILE_PNG)
        outputs["plot"] = PROFILE_PNG
    atomic_write_text(out_dir / "profile.md", _markdown(table) + (f"\nNo profile: {reason}\n" if reason else ""))
    write_manifest(out_dir, "profile", inputs={"effects": hash_path(eff_path), "evals": hash_path(res_path)},
                   params={"pairs": [list(p) for p in pairs], "scorer": scorer, "dose": dose, "n_perm": n_perm},
                   outputs=outputs, sign="higher = more of the preference (both profiles)", reason=reason)
    return {"pairs": table.to_dict("records"), "n_pairs": len(table), "reason": reason}


def _markdown(table: pd.DataFrame) -> str:
    from artifacts.tables import markdown_table

    cols = ["direction", "tune", "dose", "layer", "n_dimensions", "pearson", "p_perm_pearson",
            "p_vs_controls_pearson", "spearman", "p_perm_spearman", "p_vs_controls_spearman", "n_controls",
            "control_pearson_min", "control_pearson_max"]
    return "# Profile test\n\n" + __doc__.split("\n\n", 1)[1] + "\n" + markdown_table(table, cols) + "\n"
