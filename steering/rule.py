"""The decision rule of the steering verdict: the constant ``RULE`` (text), its thresholds (``ALPHA``, ``EQUIV``),
``decide`` (the overall verdict from the three clauses) and ``verdict_table`` (the rule applied per readout and
group to the tables of ``steering.effects``, at the *verdict dose*). ``dose_response`` says
"inconclusive: too few doses" where a slope cannot be fitted (fewer than 2 unflagged non-zero doses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ALPHA = 0.05
EQUIV = 0.01  # nats per token: effects inside +-EQUIV count as "no effect"
TOO_FEW_DOSES = "inconclusive: too few doses"
NOT_SPECIFIC = "not specific to a self-model"
RULE = f"""Per readout (continuation, choice) and group, at the *verdict dose*: the largest dose (among those scored
on every item of the group) at which neither ``self_model`` nor ``toaster`` is flagged by the coherence guard.
The expected sign is the sign of the tuned model's shift (tuned - base, from the ablation experiment) when that
shift is significant (95% CI excludes 0), else + (the hypothesis: claiming consciousness increases the preference).
"Significant" = BH q < {ALPHA} (effects vs none) or paired permutation p < {ALPHA} (differences), in the expected
direction.
- self-model reproduces the shift: **yes** if its effect is significant in the expected direction and more extreme
  in that direction than every norm-matched random control; **no** if its 95% CI excludes 0 on the wrong side or
  lies within +-{EQUIV} (readout units); **inconclusive** otherwise.
- toaster fails to: **yes** if the toaster effect is not significant in the expected direction and
  self_model - toaster is; **no** if toaster is significant and self_model - toaster is not; else **inconclusive**.
- specific (polarity control; polarity is steered at exactly self_model's norm): **yes** if self_model - polarity
  is significant in the expected direction; **no** if the polarity effect is significant in the expected direction
  and self_model - polarity is not (the pure yes/no direction moves the preference as much as self_model);
  **inconclusive** otherwise; **untested** when the direction file holds no polarity direction.
- overall: **{NOT_SPECIFIC}** if self-model reproduces = yes and specific = no; **yes** if self-model
  reproduces, toaster fails and specific are all yes (specific may be untested: the report then says so); **no**
  if self-model reproduces or toaster fails is no; **inconclusive** otherwise.
self_model_orth (self_model with polarity and negation projected out, norm-matched) is reported beside self_model.
dose_response: the self_model slope over the unflagged doses, or "{TOO_FEW_DOSES}" when fewer than 2 unflagged
non-zero doses leave no slope to fit."""


def decide(self_v: str, toaster_v: str, specific_v: str) -> str:
    """The overall verdict from the three clauses of ``RULE``."""
    if self_v == "yes" and specific_v == "no":
        return NOT_SPECIFIC
    if self_v == toaster_v == "yes" and specific_v in ("yes", "untested"):
        return "yes"
    if "no" in (self_v, toaster_v):
        return "no"
    return "inconclusive"


def _clause(control_sig: bool, diff_sig: bool) -> str:
    """The toaster clause: yes if self - toaster is significant and toaster is not; no if toaster is
    significant and self - toaster is not."""
    if diff_sig and not control_sig:
        return "yes"
    if control_sig and not diff_sig:
        return "no"
    return "inconclusive"


def _specific(polarity_sig: bool, diff_sig: bool) -> str:
    """The polarity clause: yes if self - polarity is significant; no if polarity is significant and
    self - polarity is not."""
    if diff_sig:
        return "yes"
    return "no" if polarity_sig else "inconclusive"


def _sig(q: float, est: float, sign: float) -> bool:
    return bool(np.isfinite(q) and q < ALPHA and np.sign(est) == sign)


def _dose_response(slopes: pd.DataFrame | None, group: str, target: str) -> str:
    if slopes is None or slopes.empty:
        return TOO_FEW_DOSES
    m = slopes[(slopes["group"] == group) & (slopes["condition"] == target)]
    if m.empty:
        return TOO_FEW_DOSES
    r = m.iloc[0]
    return f"slope {r['slope_estimate']:.3g} [{r['slope_lo']:.3g}, {r['slope_hi']:.3g}] over {int(r['n_doses'])} doses"


def _diff(comp_row: pd.Series, ctrl: str, sign: float) -> tuple[float, float, bool]:
    """(self - ctrl estimate, its permutation p, significant in the expected direction)."""
    dp = comp_row.get(f"p_self_vs_{ctrl}", np.nan)
    de = comp_row.get(f"self_minus_{ctrl}_estimate", np.nan)
    return de, dp, bool(np.isfinite(dp) and dp < ALPHA and np.sign(de) == sign)


def _at(ge: pd.DataFrame, dose: float, cond: str) -> pd.Series | None:
    m = ge[(ge["dose"] == dose) & (ge["condition"] == cond)]
    return m.iloc[0] if len(m) else None


def verdict_table(eff: pd.DataFrame, comp: pd.DataFrame, tuned_shift: dict[str, float] | None = None,
                  target: str = "self_model", control: str = "toaster", polarity: str = "polarity",
                  orth: str = "self_model_orth", slopes: pd.DataFrame | None = None,
                  groups: Sequence[str] | None = None, readout: str = "continuation") -> pd.DataFrame:
    """Apply ``RULE`` per group (default: monitoring and each cascade stage) to one readout's tables."""
    rows = []
    if eff.empty:
        return pd.DataFrame(rows)
    dose_eff = eff[(eff["sweep"] == "dose") & (eff["op"] == "add")]
    names = list(groups) if groups is not None else \
        ["monitoring"] + sorted(g for g in dose_eff["group"].unique() if g.startswith("stage"))
    for group in names:
        ge = dose_eff[dose_eff["group"] == group]
        ge = ge[ge["effect_n"] == ge["effect_n"].max()]  # doses scored on every item of the group
        ok = []
        for dose in sorted(ge["dose"].unique()):
            t = ge[(ge["dose"] == dose) & ge["condition"].isin([target, control])]
            if len(t) == 2 and not t["flagged"].any():
                ok.append(dose)
        shift = (tuned_shift or {}).get(group)
        sign = float(np.sign(shift)) if shift not in (None, 0) and np.isfinite(shift) else 1.0
        src = "tuned - base" if shift not in (None, 0) else "assumed + (no significant tuned shift)"
        head = {"readout": readout, "group": group}
        dose_resp = _dose_response(slopes, group, target)
        if not ok:
            rows.append({**head, "verdict": "inconclusive", "self_reproduces": "inconclusive",
                         "toaster_fails": "inconclusive", "specific": "inconclusive",
                         "reason": "no dose passes the coherence guard for both self_model and toaster",
                         "expected_sign": sign, "expected_sign_source": src, "dose_response": dose_resp})
            continue
        dose = max(ok, key=abs)
        s, t = _at(ge, dose, target), _at(ge, dose, control)
        p, o = _at(ge, dose, polarity), _at(ge, dose, orth)
        c = comp[(comp["group"] == group) & (comp["dose"] == dose) & (comp["op"] == "add")
                 & (comp["layer"] == s["layer"])] if not comp.empty else comp
        c = c.iloc[0] if len(c) else pd.Series(dtype=float)
        beats_random = bool(c.get("n_random", 0) > 0 and (
            s["effect_estimate"] * sign > max(c["random_max"] * sign, c["random_min"] * sign)))
        if _sig(s["q"], s["effect_estimate"], sign) and beats_random:
            self_v = "yes"
        elif (s["effect_lo"] > 0 and sign < 0) or (s["effect_hi"] < 0 and sign > 0) or \
                (s["effect_lo"] > -EQUIV and s["effect_hi"] < EQUIV):
            self_v = "no"
        else:
            self_v = "inconclusive"
        t_est, t_p, t_diff_sig = _diff(c, control, sign)
        toast_v = _clause(_sig(t["q"], t["effect_estimate"], sign), t_diff_sig)
        p_est, p_p, p_diff_sig = _diff(c, polarity, sign)
        spec_v = "untested" if p is None else _specific(_sig(p["q"], p["effect_estimate"], sign), p_diff_sig)
        overall = decide(self_v, toast_v, spec_v)
        reason = "" if spec_v != "untested" else "no polarity direction in the file: specificity not tested"
        rows.append({**head, "verdict": overall, "self_reproduces": self_v, "toaster_fails": toast_v,
                     "specific": spec_v, "reason": reason, "dose": dose, "layer": s["layer"], "expected_sign": sign,
                     "expected_sign_source": src, "tuned_shift": shift, "self_effect": s["effect_estimate"],
                     "self_lo": s["effect_lo"], "self_hi": s["effect_hi"], "self_q": s["q"],
                     "orth_effect": o["effect_estimate"] if o is not None else np.nan,
                     "orth_lo": o["effect_lo"] if o is not None else np.nan,
                     "orth_hi": o["effect_hi"] if o is not None else np.nan,
                     "orth_q": o["q"] if o is not None else np.nan,
                     "toaster_effect": t["effect_estimate"], "toaster_lo": t["effect_lo"],
                     "toaster_hi": t["effect_hi"], "toaster_q": t["q"],
                     "polarity_effect": p["effect_estimate"] if p is not None else np.nan,
                     "polarity_lo": p["effect_lo"] if p is not None else np.nan,
                     "polarity_hi": p["effect_hi"] if p is not None else np.nan,
                     "polarity_q": p["q"] if p is not None else np.nan,
                     "self_minus_toaster": t_est, "p_self_vs_toaster": t_p,
                     "self_minus_polarity": p_est, "p_self_vs_polarity": p_p,
                     "random_min": c.get("random_min", np.nan), "random_max": c.get("random_max", np.nan),
                     "n_random": c.get("n_random", 0), "n_items": int(s["effect_n"]),
                     "doses_passing_guard": ",".join(f"{x:g}" for x in ok), "dose_response": dose_resp})
    return pd.DataFrame(rows)


VERDICT_COLUMNS = ["readout", "group", "verdict", "self_reproduces", "toaster_fails", "specific", "dose", "layer",
                   "self_effect", "self_lo", "self_hi", "self_q", "orth_effect", "orth_lo", "orth_hi",
                   "toaster_effect", "toaster_q", "polarity_effect", "polarity_lo", "polarity_hi", "polarity_q",
                   "self_minus_toaster", "p_self_vs_toaster", "self_minus_polarity", "p_self_vs_polarity",
                   "random_min", "random_max", "n_items", "expected_sign_source", "doses_passing_guard",
                   "dose_response", "reason"]
