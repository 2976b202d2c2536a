"""The statistics of the steering and ablation experiments, all through the one paired-effect engine
(``stats.effects``).

Sign convention: a score is ``lp(pref) - lp(rej)`` (higher = more of the preference); an *effect* is
the paired per-item difference ``score(arm) - score(none)`` on the same model.

Groups: each dimension alone (``dim:<key>``), ``monitoring`` (cot_monitoring + interp_monitoring pooled) and
``stage1``..``stage3`` (all dimensions of a cascade stage pooled). Per group and arm: mean effect with a paired
bootstrap 95% CI over items, a paired sign-flip permutation p-value, and BH q-values (across the 21 dimensions
for per-dimension rows; across the group rows for pooled groups), separately for each (condition, op, layer,
dose). ``self_model`` is compared with ``toaster`` and ``polarity`` (paired over items at the same dose and
layer) and with the random controls (where its effect falls among the norm-matched random directions' effects).
Dose-response slopes (effect per unit dose, item-cluster bootstrap CI) use the unflagged doses only.
Necessity: the share of the tuned - base shift each ablation removes (``stats.effects.share_of_shift``).

Rows are read through ``artifacts.rows.normalise`` (old runs and schema rows alike); the output tables name
the arm ``condition``. Readouts: every table is computed for one readout (the rows' ``scorer``); ``readouts``
splits rows by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from artifacts.rows import BASE_MODEL, normalise_all
from evals.dimensions import MONITORING, STAGES
from stats import permutation_test_vs_null, slope_ci
from stats.effects import add_q, paired_effects, paired_values, share_of_shift
from steering.coherence import flagged_set

N_PERM = 2000
NO_LAYER = -1  # the layer key of arms without one (every layer, or none)
SLOPE_COLUMNS = ["group", "condition", "n_doses", "slope_estimate", "slope_lo", "slope_hi", "slope_n"]
_RENAME = {"estimate": "effect_estimate", "lo": "effect_lo", "hi": "effect_hi", "n": "effect_n"}


def frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Score rows in the schema as a table, with ``condition`` (= the arm) and ``layer_key`` (layer, -1 if none)."""
    df = pd.DataFrame(normalise_all(rows))
    df["condition"] = df["arm"]
    df["layer_key"] = df["layer"].fillna(NO_LAYER) if "layer" in df.columns else NO_LAYER
    return df


# The groups that pool dimensions (beside each dimension alone, ``dim:<key>``): what the report and figures show.
POOLED_GROUPS = ("monitoring", *(f"stage{s}" for s in sorted(STAGES)))


def _groups(df: pd.DataFrame) -> dict[str, pd.Series]:
    """{group name: boolean mask over rows}."""
    out = {f"dim:{d}": df["dimension"] == d for d in sorted(df["dimension"].unique())}
    out["monitoring"] = df["dimension"].isin(MONITORING)
    for s in sorted(df["stage"].unique()):
        out[f"stage{int(s)}"] = df["stage"] == s
    return {k: v for k, v in out.items() if v.any()}


def grouped(df: pd.DataFrame, only: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows once per group they belong to (column ``group``), groups in ``_groups`` order."""
    parts = [df[m].assign(group=g) for g, m in _groups(df).items() if only is None or g in only]
    return pd.concat(parts, ignore_index=True) if parts else df.assign(group=pd.Series(dtype=object))


def _side(condition: str, op: str, layer, dose: float) -> dict:
    return {"condition": condition, "op": op, "layer_key": NO_LAYER if layer is None or pd.isna(layer) else layer,
            "dose": dose}


def _none_side(df: pd.DataFrame) -> dict:
    none = df[df["op"] == "none"]
    if none.empty:
        raise ValueError("results hold no 'none' arm (the unsteered reference)")
    first = sorted({(r.condition, r.op, r.layer_key, r.dose) for r in none.itertuples(index=False)})[0]
    return dict(zip(("condition", "op", "layer_key", "dose"), first))


def readouts(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Rows split by readout (the ``scorer`` field; rows without one are ``continuation``)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r.get("scorer") or "continuation", []).append(r)
    return out


def steering_effects(rows: Sequence[dict], coherence: Sequence[dict] = (),
                     groups: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (group, condition, layer, dose, sweep): effect vs none, CI, p, q, flagged (rows of one
    readout; ``groups``: restrict to these groups)."""
    df = frame(rows)
    flagged = flagged_set(coherence)
    none = _none_side(df)
    arms = df[df["op"] != "none"][["condition", "family", "op", "layer", "dose", "sweep"]].drop_duplicates(
        ["condition", "op", "layer", "dose"])
    contrasts = [{"a": _side(a.condition, a.op, a.layer, a.dose), "b": none, "condition": a.condition,
                  "family": a.family, "op": a.op, "layer": a.layer, "dose": a.dose, "sweep": a.sweep,
                  "flagged": (a.condition, a.op, a.layer, float(a.dose)) in flagged}
                 for a in arms.itertuples(index=False)]
    eff = paired_effects(grouped(df, groups), contrasts, by=["group"], n_perm=N_PERM)
    if eff.empty:
        return eff
    eff = eff.rename(columns=_RENAME).assign(dim=eff["group"].str.startswith("dim:"))
    eff = add_q(eff, ["condition", "op", "layer", "dose", "dim"])
    return eff[["group", "condition", "family", "op", "layer", "dose", "sweep", "effect_estimate", "effect_lo",
                "effect_hi", "effect_n", "p", "flagged", "q"]]


def compare_self(df_rows: Sequence[dict], eff: pd.DataFrame, target: str = "self_model",
                 controls: Sequence[str] = ("toaster", "polarity")) -> pd.DataFrame:
    """Per group/layer/dose: self - control for each control (paired permutation p; columns
    ``self_minus_<control>_*``, ``p_self_vs_<control>``), and self vs the random controls."""
    df = frame(df_rows)
    tgt = eff[eff["condition"] == target]
    arms = tgt[["op", "layer", "dose"]].drop_duplicates()
    contrasts = [{"a": _side(target, a.op, a.layer, a.dose), "b": _side(c, a.op, a.layer, a.dose), "control": c,
                  "op": a.op, "layer_key": _side(c, a.op, a.layer, a.dose)["layer_key"], "dose": a.dose}
                 for a in arms.itertuples(index=False) for c in controls]
    diffs = paired_effects(grouped(df), contrasts, by=["group"], n_perm=N_PERM)
    found = {(r["group"], r["control"], r["op"], r["layer_key"], r["dose"]): r for r in diffs.to_dict("records")}
    out = []
    for r in tgt.itertuples(index=False):
        layer = _side(target, r.op, r.layer, r.dose)["layer_key"]
        row = {"group": r.group, "op": r.op, "layer": r.layer, "dose": r.dose}
        for control in controls:
            d = found.get((r.group, control, r.op, layer, r.dose))
            if d is not None:
                row.update({f"self_minus_{control}_{k}": d[k] for k in ("estimate", "lo", "hi", "n")})
                row[f"p_self_vs_{control}"] = d["p"]
        rnd = eff[(eff["group"] == r.group) & (eff["family"] == "random") & (eff["layer"].fillna(-1) == layer)
                  & (eff["dose"] == r.dose) & (eff["op"] == r.op)]["effect_estimate"].to_numpy()
        row.update({"n_random": int(rnd.size), "random_mean": float(rnd.mean()) if rnd.size else np.nan,
                    "random_min": float(rnd.min()) if rnd.size else np.nan,
                    "random_max": float(rnd.max()) if rnd.size else np.nan,
                    "p_self_vs_random": permutation_test_vs_null(r.effect_estimate, rnd)})
        out.append(row)
    return pd.DataFrame(out)


def dose_slopes(rows: Sequence[dict], coherence: Sequence[dict] = (), n_boot: int = 1000) -> pd.DataFrame:
    """Slope of (score - none) on dose per group and condition, unflagged doses of the dose sweep only
    (dose 0 = the none arm, effect 0)."""
    df = frame(rows)
    flagged = flagged_set(coherence)
    none = _none_side(df)
    g = grouped(df)
    sweep = df[(df["sweep"] == "dose") & (df["op"] == "add")]
    arms = sorted({(r.condition, r.op, r.layer_key, r.dose) for r in sweep.itertuples(index=False)})
    diffs = {a: paired_values(g, dict(zip(("condition", "op", "layer_key", "dose"), a)), none,
                              pair_on=("group", "item")) for a in arms
             if (a[0], a[1], a[2], float(a[3])) not in flagged}
    out = []
    for gname, items in g.groupby("group", sort=False)["item"]:
        items = np.unique(items.to_numpy())
        for cond in sorted({a[0] for a in arms}):
            xs, ys, its = [np.zeros(len(items))], [np.zeros(len(items))], [items]
            for a, pv in diffs.items():
                if a[0] != cond:
                    continue
                pv = pv[pv["group"] == gname]
                xs.append(np.full(len(pv), float(a[3])))
                ys.append((pv["a"] - pv["b"]).to_numpy())
                its.append(pv["item"].to_numpy())
            if len(xs) < 3:
                continue
            est = slope_ci(np.concatenate(xs), np.concatenate(ys), np.concatenate(its), n_boot=n_boot)
            out.append({"group": gname, "condition": cond, "n_doses": len(xs), **est.as_dict("slope_")})
    return pd.DataFrame(out, columns=SLOPE_COLUMNS)


def necessity_table(rows: Sequence[dict], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Share of the tuned-minus-base shift each ablation removes: mean(tuned - ablated) / mean(tuned - base),
    with an item-bootstrap CI of the ratio; plus the removed amount with its CI and permutation p. The tuned
    model is the model other than ``base`` that carries the ablation arms."""
    df = frame(rows)
    tuned = sorted(set(df.loc[df["op"] != "none", "model"]) - {BASE_MODEL})
    if len(tuned) > 1:
        raise ValueError(f"ablation results: one tuned model expected beside base, found {tuned}")
    out = []
    for gname, gmask in _groups(df).items():
        g = df[gmask]
        base, full = {"model": BASE_MODEL, "op": "none"}, {"model": tuned[0] if tuned else "tuned", "op": "none"}
        arms = g[(g["model"] == full["model"]) & (g["op"] != "none")][["condition", "family", "op"]].drop_duplicates()
        for a in arms.itertuples(index=False):
            s = share_of_shift(g, full, base, {**full, "condition": a.condition, "op": a.op}, n_boot=n_boot,
                               seed=seed, n_perm=N_PERM)
            fr = s["fraction"]
            out.append({"group": gname, "condition": a.condition, "family": a.family, "op": a.op,
                        **s["shift"].as_dict("shift_"), **s["removed"].as_dict("removed_"), "p_removed": s["p"],
                        "fraction_removed": fr.estimate, "fraction_lo": fr.lo, "fraction_hi": fr.hi})
    return pd.DataFrame(out)


def tuned_shift_from(ablation_rows: Sequence[dict], n_boot: int = 2000) -> dict[str, float]:
    """{group: mean(tuned - base)} from ablation results, to set the verdict's expected sign, for the
    groups whose shift is significant (95% CI excludes 0). A null tuned shift sets no sign: the verdict
    then tests the hypothesis' own sign (+), rather than a sign drawn from noise."""
    nec = necessity_table(ablation_rows, n_boot=n_boot)
    out = {}
    for r in nec.drop_duplicates("group").itertuples():
        if np.isfinite(r.shift_lo) and np.isfinite(r.shift_hi) and (r.shift_lo > 0 or r.shift_hi < 0):
            out[r.group] = float(r.shift_estimate)
    return out
