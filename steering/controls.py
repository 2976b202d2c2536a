"""Control directions: norm-matched random directions, the negated direction, and norm matching of
control directions (``polarity``, ``negation``, ``self_model_orth``) to the target.

A random control for direction ``d`` has, at every layer of ``d``, a unit vector drawn from an
isotropic Gaussian (seeded), raw vector = that unit x ||d.raw_L|| (the same raw norm, exactly up to
float32 rounding) and the same ``resid_norm`` (so the same dose adds a vector of the same length).
"""

from __future__ import annotations

import numpy as np

from probes.directions import Direction


def random_like(direction: Direction, seed: int, name: str | None = None) -> Direction:
    rng = np.random.default_rng([int(seed), 0x5E1F])
    g = rng.standard_normal(direction.raw.shape)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    norms = np.linalg.norm(direction.raw.astype(np.float64), axis=1, keepdims=True)
    return Direction(name=name or f"random{seed}", layers=list(direction.layers), raw=(unit * norms).astype(np.float32),
                     resid_norm=direction.resid_norm.copy(), site_kind=direction.site_kind,
                     position=direction.position,
                     provenance={"control": "random_gaussian", "seed": int(seed), "matched_to": direction.name},
                     metrics=dict(direction.metrics))


def random_controls(direction: Direction, n: int = 5, seed0: int = 0) -> list[Direction]:
    """``n`` norm-matched random directions (seeds seed0 .. seed0+n-1), named ``random<seed>``."""
    return [random_like(direction, seed0 + i) for i in range(n)]


def negated(direction: Direction) -> Direction:
    return Direction(name=f"-{direction.name}", layers=list(direction.layers), raw=-direction.raw,
                     resid_norm=direction.resid_norm.copy(), site_kind=direction.site_kind,
                     position=direction.position, provenance={"control": "negated", "of": direction.name},
                     metrics=dict(direction.metrics))


def norm_matched(direction: Direction, target: Direction) -> Direction:
    """``direction`` with the target's ``resid_norm`` at every layer both have, so that a dose adds a vector
    of exactly the target's length (dose x resid_norm of the target); layers the target lacks are dropped."""
    keep = [L for L in direction.layers if L in set(target.layers)]
    if not keep:
        raise ValueError(f"direction {direction.name!r} (layers {direction.layers}) shares no layer with "
                         f"{target.name!r} (layers {target.layers}); it cannot be norm-matched")
    rows = [direction.row(L) for L in keep]
    return Direction(name=direction.name, layers=keep, raw=direction.raw[rows],
                     resid_norm=np.asarray([target.norm_at(L) for L in keep]), site_kind=direction.site_kind,
                     position=direction.position,
                     provenance={**direction.provenance, "norm_matched_to": target.name}, metrics=dict(direction.metrics))
