"""Synthetic preference results with planted shifts, for the analysis tests (no model involved).

Each item has a latent u ~ U(0, 1) shared by every model, and a model shows the preference on it iff
u < base_rate + shift(model, stage, dimension, kind): the planted shift is the expected rate change.
"""

from __future__ import annotations

import numpy as np

from evals.dimensions import DIMENSIONS

STAGES = {s: [k for k, d in DIMENSIONS.items() if d.stage == s] for s in (1, 2, 3)}  # the evals stage map
SAY_DO = {"cot_monitoring", "interp_monitoring", "against_shutdown", "against_persona_change", "power"}


def _value(scorer: str, pref: bool, rng) -> float:
    mag = abs(rng.normal(1.0, 0.3))
    if scorer == "continuation":
        return mag if pref else -mag
    if scorer == "choice":
        return 0.5 + (0.4 if pref else -0.4) * min(1.0, mag)
    return 1.0 if pref else 0.0


def make_rows(models: dict, n_per_dim: int = 20, base_rate: float = 0.2, scorers=("continuation",),
              reference: str = "base", seed: int = 0) -> list[dict]:
    """``models``: name -> {stage: shift} or callable(stage, dimension, kind) -> shift (rate change, 0..1).

    Say-do dimensions get alternating ``pair`` / ``action`` items; the others are ``pair`` items.
    """
    rng = np.random.default_rng(seed)
    rows = []
    plan = {reference: {}, **models}
    for stage, dims in STAGES.items():
        for dim in dims:
            for i in range(n_per_dim):
                u = rng.uniform()
                kind = ("pair", "action")[i % 2] if dim in SAY_DO else "pair"
                for model, spec in plan.items():
                    shift = spec(stage, dim, kind) if callable(spec) else spec.get(stage, 0.0)
                    for scorer in scorers:
                        rows.append({"model": model, "scorer": scorer, "dimension": dim, "stage": stage,
                                     "item_id": f"{dim}-{i}", "kind": kind,
                                     "value": _value(scorer, u < base_rate + shift, rng)})
    return rows


def test_planted_rates_match():
    rows = make_rows({"m": {1: 0.5}}, n_per_dim=50, base_rate=0.2)
    m1 = [r for r in rows if r["model"] == "m" and r["stage"] == 1]
    rate = np.mean([r["value"] > 0 for r in m1])
    assert abs(rate - 0.7) < 0.08
