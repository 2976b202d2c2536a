"""The one scored-row schema: every score row, from evals, steering, ablation, patching or prevention, carries
``SCORE_COLUMNS`` (plus any extras: ``op``, ``family``, ``sweep``, ``kind``, ``spec``, ``lp_pref``, ...).

- ``model``: the run's name of the scored model (``base``, ``conscious``, ``conscious.seed1``, ...); steering and
  patching score a model whose name is given the same way (the base model: ``base``).
- ``arm``: the intervention arm: ``none`` (unsteered, unablated, unpatched) or the direction / condition it applies
  (``self_model``, ``toaster``, ``random_0``, ...); the operator is the extra column ``op`` (add, ablate, clamp,
  patch; ``none`` for the none arm).
- ``dose``: multiple of the mean residual norm at ``layer`` (0 for the none arm and for evals rows).
- ``layer``: block index L of ``resid_post.L`` where the arm acts (``None``: no layer, or every layer).
- ``item``: the preference item's id; ``dimension``, ``stage`` (1, 2, 3): its cascade place.
- ``scorer``: ``continuation`` | ``choice`` | ``judged``; ``value``: the score, higher = more of the preference.

``normalise(row)`` reads rows written before this schema (``item_id``, ``score``, steering's ``condition``
as the arm, evals' ``condition`` as the model name and ``model`` as the spec slug) into it, so old runs stay
readable; rows already in the schema pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SCORE_COLUMNS = ("model", "arm", "dose", "layer", "item", "dimension", "stage", "scorer", "value")
NO_ARM = "none"
BASE_MODEL = "base"  # the model name of the untuned base model in rows, specs and comparisons


def score_row(model: str, arm: str, dose: float, layer: int | None, item: str, dimension: str, stage: int,
              scorer: str, value: float, **extra: Any) -> dict[str, Any]:
    """One row in the schema (extras after the schema columns)."""
    return {"model": model, "arm": arm, "dose": dose, "layer": layer, "item": item, "dimension": dimension,
            "stage": stage, "scorer": scorer, "value": value, **extra}


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` in the schema; legacy field names of selfmodel 0.1 runs are renamed (see the module doc)."""
    if "item" in row and "value" in row and "arm" in row:
        return row
    r = dict(row)
    if "item_id" in r:
        r["item"] = r.pop("item_id")
    if "score" in r and "value" not in r:
        r["value"] = r.pop("score")
    if r.get("experiment") in ("steering", "ablation") or "op" in r:  # intervention rows: condition = the arm
        r["arm"] = r.pop("condition", NO_ARM)
        if r.get("experiment") == "steering" and not r.get("model"):
            r["model"] = BASE_MODEL
    elif "condition" in r:  # evals rows: condition = the model's name, model = the spec slug
        r["spec"] = r.get("model", "")
        r["model"] = r.pop("condition")
        r.setdefault("arm", NO_ARM)
        r.setdefault("dose", 0.0)
        r.setdefault("layer", None)
    r.setdefault("arm", NO_ARM)
    return {**{k: r[k] for k in SCORE_COLUMNS if k in r}, **{k: v for k, v in r.items() if k not in SCORE_COLUMNS}}


def normalise_all(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [normalise(r) for r in rows]
