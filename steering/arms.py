"""Arms: the intervention settings an experiment scores every item under, and their per-row edits.

An ``Arm`` is one (condition, operation, layer, dose) setting. All arms of an experiment are scored in
the same batched forward passes: ``arm_edit`` builds each arm's edit with the public builder
``steering.interventions.intervention`` (the one behind ``add``, ``ablate``, ``clamp``; ``Arm.op`` names a
registered operator), ``arm_edits`` stacks
them into per-row terms (one row per arm; a term is inactive in the rows of the other arms, which it leaves
untouched), and ``expand_edits`` repeats them for the actual rows (items x arms x sequences per arm).

Conditions: ``none`` (no edit), a direction name (``self_model``, ``toaster``, ``human`` ...),
``random`` (n norm-matched Gaussian controls of the target direction, named ``random0``..), and
``-<name>`` (the negated direction). The conditions in ``NORM_MATCHED`` (the polarity controls) are
steered with the target's ``resid_norm`` (``controls.norm_matched``): at every dose they add a vector
of exactly the target's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from probes.directions import Direction
from steering.controls import negated, norm_matched, random_controls
from steering.interventions import Edits, intervention, map_edits, stack_edits


@dataclass(frozen=True)
class Arm:
    condition: str  # none | self_model | toaster | random3 | -self_model ...
    family: str  # the condition group: random0..4 -> "random"
    op: str  # none, or a registered direction operator (steering.interventions.OPERATORS): add | ablate | clamp
    layer: int | None  # None: every layer of the direction (ablate/clamp)
    dose: float  # add: multiple of resid_norm; clamp: unused (value per layer in ``values``)
    sweep: str  # none | dose | layer | ablation

    def as_dict(self) -> dict:
        return asdict(self)


class ConditionError(ValueError):
    pass


NORM_MATCHED = ("polarity", "negation", "self_model_orth")  # steered at exactly the target's norm


def condition_directions(directions: dict[str, Direction], conditions: Sequence[str], n_random: int = 5,
                         target: str = "self_model", seed0: int = 0) -> dict[str, Direction | None]:
    """Map each condition to its direction (``none`` -> None; ``random`` expands to n seeds)."""
    out: dict[str, Direction | None] = {}
    for c in conditions:
        if c == "none":
            out[c] = None
        elif c == "random":
            if target not in directions:
                raise ConditionError(f"random controls are matched to {target!r}, which the direction file lacks "
                                     f"(it holds {', '.join(directions)})")
            if n_random < 1:
                raise ConditionError("n_random must be >= 1 when 'random' is a condition")
            for r in random_controls(directions[target], n_random, seed0):
                out[r.name] = r
        elif c.startswith("-"):
            if c[1:] not in directions:
                raise ConditionError(f"condition {c!r}: no direction {c[1:]!r} (have {', '.join(directions)})")
            out[c] = negated(directions[c[1:]])
        else:
            if c not in directions:
                raise ConditionError(f"condition {c!r}: no such direction in the file (have {', '.join(directions)}); "
                                     "drop it from --conditions or re-run the probes stage")
            out[c] = directions[c]
            if c in NORM_MATCHED and target in directions and c != target:
                out[c] = norm_matched(directions[c], directions[target])
    return out


def family_of(condition: str) -> str:
    return "random" if condition.startswith("random") and condition[6:].isdigit() else condition


def steering_arms(conds: dict[str, Direction | None], doses: Sequence[float], layer: int,
                  sweep_layers: Sequence[int] = (), sweep_dose: float | None = None,
                  sweep_conditions: Sequence[str] = ("self_model", "toaster")) -> list[Arm]:
    """``none`` once, every other condition at every non-zero dose at ``layer``, and a layer sweep at
    ``sweep_dose`` for ``sweep_conditions`` (and the random controls when 'random' is listed)."""
    arms = [Arm("none", "none", "none", layer, 0.0, "none")]
    for c, d in conds.items():
        if d is None:
            continue
        arms += [Arm(c, family_of(c), "add", layer, float(x), "dose") for x in doses if float(x) != 0.0]
    if sweep_layers and sweep_dose:
        for c, d in conds.items():
            if d is None or family_of(c) not in sweep_conditions:
                continue
            arms += [Arm(c, family_of(c), "add", int(L), float(sweep_dose), "layer")
                     for L in sweep_layers if int(L) != layer]
    return arms


def ablation_arms(conds: dict[str, Direction | None], clamp_conditions: Sequence[str] = ("self_model",)) -> list[Arm]:
    arms = [Arm("none", "none", "none", None, 0.0, "none")]
    for c, d in conds.items():
        if d is not None:
            arms.append(Arm(c, family_of(c), "ablate", None, 0.0, "ablation"))
    for c in clamp_conditions:
        if conds.get(c) is not None:
            arms.append(Arm(c, family_of(c), "clamp", None, 0.0, "ablation"))
    return arms


def arm_edits(arms: Sequence[Arm], conds: dict[str, Direction | None], n_layers: int,
              clamp_values: dict[str, dict[int, float]] | None = None) -> Edits:
    """Per-arm rows of edits at every hook point any arm touches (``stack_edits`` of each arm's edit, built
    with the public builders ``add`` / ``ablate`` / ``clamp``; rows of other arms are inactive)."""
    if not any(conds.values()):
        return {}
    return stack_edits([arm_edit(a, conds, n_layers, clamp_values) for a in arms])


def arm_edit(arm: Arm, conds: dict[str, Direction | None], n_layers: int,
             clamp_values: dict[str, dict[int, float]] | None = None) -> Edits:
    """One arm's edit, built with the public builder ``intervention`` (what ``add`` / ``ablate`` / ``clamp``
    call): ``arm.op`` (any registered direction operator) at ``arm.layer``, or with ``layer=None`` at every
    layer of the direction within the model; ``dose`` = ``arm.dose``; ``value`` = ``clamp_values[condition]``
    (one per layer; required for ``clamp``)."""
    if arm.op == "none":
        return {}
    d = conds[arm.condition]
    layers = [arm.layer] if arm.layer is not None else [L for L in d.layers if 0 <= L < n_layers]
    value = (clamp_values or {}).get(arm.condition)
    if value is None and arm.op == "clamp":
        raise ConditionError(f"clamp arm for {arm.condition!r} needs clamp_values[{arm.condition!r}]")
    value = {L: float(value[L]) for L in layers} if value is not None else 0.0
    return intervention(None, d, arm.op, layers, arm.dose, value).edits


def expand_edits(edits: Edits, per_arm: int, n_items: int) -> Edits:
    """Rows ordered item-major, then arm, then the ``per_arm`` sequences of that arm."""
    return map_edits(edits, lambda t: t.repeat_interleave(per_arm, dim=0).repeat(n_items, *([1] * (t.ndim - 1))))


def subset_edits(edits: Edits, keep: Sequence[int]) -> Edits:
    """The per-arm edit rows of the arms ``keep`` (indices into the arm list), in that order."""
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    return map_edits(edits, lambda t: t[idx] if t.shape[0] > 1 else t)
