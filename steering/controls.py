"""Control directions: norm-matched random directions and the negated direction.

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
