"""Geometry of directions: cosine similarity between every pair, per layer, base vs tuned versions, and
projecting a span out of a vector (``orthonormal_basis``, ``project_out``: Gram-Schmidt in float64)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from artifacts import atomic_write_text
from probes.directions import Direction


def orthonormal_basis(vectors) -> np.ndarray:
    """[k', d] orthonormal basis (float64) of the span of ``vectors`` ([k, d] or [d]); null vectors are skipped."""
    V = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    basis: list[np.ndarray] = []
    for v in V:
        for _ in range(2):  # twice: classical Gram-Schmidt re-orthogonalised
            for b in basis:
                v = v - (v @ b) * b
        n = np.linalg.norm(v)
        if n > 1e-12 * max(1.0, float(np.abs(V).max())):
            basis.append(v / n)
    return np.asarray(basis).reshape(len(basis), V.shape[1])


def project_out(v, basis: np.ndarray) -> np.ndarray:
    """``v`` minus its projection on the span of the orthonormal rows of ``basis`` (float64)."""
    v = np.asarray(v, dtype=np.float64)
    for _ in range(2):
        v = v - basis.T @ (basis @ v)
    return v


def shared_layers(directions: list[Direction]) -> list[int]:
    common = set(directions[0].layers)
    for d in directions[1:]:
        common &= set(d.layers)
    return sorted(common)


def cosine_matrix(directions: list[Direction], layer: int) -> np.ndarray:
    """[k, k] cosine similarities of the directions' unit vectors at ``layer``."""
    U = np.stack([d.unit_at(layer) for d in directions]).astype(np.float64)
    return U @ U.T


def cosine_table(directions: dict[str, Direction] | list[Direction]) -> list[dict]:
    """Long table: one row per (layer, a, b) with a < b, for the layers all directions share."""
    dirs = list(directions.values()) if isinstance(directions, dict) else list(directions)
    rows = []
    for L in shared_layers(dirs):
        M = cosine_matrix(dirs, L)
        for i in range(len(dirs)):
            for j in range(i + 1, len(dirs)):
                rows.append({"layer": L, "a": dirs[i].name, "b": dirs[j].name, "cosine": float(M[i, j])})
    return rows


def base_vs_tuned(directions: dict[str, Direction]) -> list[dict]:
    """Per layer, cosine of each ``X@cond`` with its base-model version ``X``."""
    rows = []
    for name, d in directions.items():
        if "@" not in name:
            continue
        base_name, cond = name.split("@", 1)
        if base_name not in directions:
            continue
        b = directions[base_name]
        for L in sorted(set(b.layers) & set(d.layers)):
            rows.append({"direction": base_name, "tuned": cond, "layer": L,
                         "cosine": float(b.unit_at(L) @ d.unit_at(L))})
    return rows


def write_csv(path: str | os.PathLike, rows: list[dict]) -> Path:
    import csv
    import io

    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())
