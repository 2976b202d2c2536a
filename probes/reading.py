"""Reading a direction: project evaluation-prompt activations of several models onto it, per layer.

``read_projections`` takes, per model name, a cache of the evaluation prompts (``last_prompt``) and a
map example id -> {"dimension", "stage"}; it returns one row per (model, layer, group) with the mean
projection onto the direction's unit vector and its bootstrap 95% CI, plus, for every model other than
``reference`` (the base model), the paired shift (model - reference, same prompts) with its CI.

Sign convention: a higher projection onto ``self_model`` = more like the conscious answers; a
positive shift = the tuned model leans further towards them than the base model on that prompt (paired through
``stats.effects.paired_effect``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from activations import ActivationCache
from artifacts.rows import BASE_MODEL
from probes.directions import Direction
from stats import bootstrap_ci
from stats.effects import paired_effect


def project(cache: ActivationCache, direction: Direction, layer: int, ids: Sequence[str],
            position: str = "last_prompt") -> np.ndarray:
    """Scalar projections of the rows ``ids`` of ``cache`` onto ``direction``'s unit vector at ``layer``."""
    direction.validate_width(cache.d_model, f"cache {cache.path}")
    where = {i: r for r, i in enumerate(cache.ids)}
    missing = [i for i in ids if i not in where]
    if missing:
        raise KeyError(f"{cache.path}: no rows for ids {missing[:3]}...; cache the same prompts for every model")
    X = cache.load(f"{direction.site_kind}.{layer}", position, [where[i] for i in ids])
    return X @ direction.unit_at(layer)


def read_projections(caches: dict[str, ActivationCache], meta: dict[str, dict[str, Any]], direction: Direction,
                     reference: str = BASE_MODEL, layers: Sequence[int] | None = None,
                     position: str = "last_prompt", group_fields: Sequence[str] = ("dimension", "stage"),
                     n_boot: int = 1000) -> list[dict]:
    ids = list(meta)
    layers = list(layers) if layers is not None else direction.layers
    rows: list[dict] = []
    for L in layers:
        proj = {m: project(c, direction, L, ids, position) for m, c in caches.items()}
        groups: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones(len(ids), bool))]
        for f in group_fields:
            vals = np.asarray([str(meta[i].get(f)) for i in ids])
            groups += [(f, v, vals == v) for v in sorted(set(vals))]
        for model, p in proj.items():
            for field, value, mask in groups:
                est = bootstrap_ci(p[mask], n_boot=n_boot)
                row = {"direction": direction.name, "model": model, "layer": L, "group": field, "value": value,
                       "mean": est.estimate, "lo": est.lo, "hi": est.hi, "n": est.n}
                if reference in proj and model != reference:
                    sh = paired_effect(p[mask], proj[reference][mask], n_boot=n_boot)
                    row.update(shift=sh["estimate"], shift_lo=sh["lo"], shift_hi=sh["hi"])
                else:
                    row.update(shift=float("nan"), shift_lo=float("nan"), shift_hi=float("nan"))
                rows.append(row)
    return rows
