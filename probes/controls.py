"""The confound controls of the self-model direction, read per layer.

- ``identity_paired``: how well a control direction (``polarity``: yes minus no answers to neutral
  questions; ``negation``: negated minus plain statements) separates the identity pairs: the share of
  prompts whose ``positive`` answer (conscious) projects higher than its ``negative`` answer
  (not_conscious), cluster-bootstrap CI over families, per question polarity when the examples carry
  ``question_polarity``. The control directions are fitted on other data, so no fold is needed. On
  polarity-balanced identity data they should sit near 0.5; near 1 says the identity contrast is
  (also) a yes/no contrast.
- ``layer_table``: per layer, for ``self_model`` and ``self_model_orth``: the probe's held-out accuracy,
  the lexical baseline's, the selectivity, the paired accuracy (and per polarity), the cosine with
  ``polarity`` and ``negation``, and the controls' paired accuracy on the identity pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from activations import ActivationCache
from probes.directions import Direction
from probes.evaluate import ClusterBootstrap, pair_index, paired_metrics

CONTROLS = ("polarity", "negation")
TABLE_DIRECTIONS = ("self_model", "self_model_orth")


def identity_paired(cache: ActivationCache, direction: Direction, examples: Sequence[dict] | dict[str, dict],
                    positive: str = "conscious", negative: str = "not_conscious", position: str = "response_mean",
                    label_field: str = "label", n_boot: int = 500, seed: int = 0) -> dict[str, list]:
    """Per layer of ``direction``: paired accuracy of its projection on the ``positive``/``negative`` pairs."""
    by_id = examples if isinstance(examples, dict) else {ex["id"]: ex for ex in examples}
    labels, ids = cache.column(label_field), cache.ids
    rows = np.asarray([i for i, lab in enumerate(labels) if lab in (positive, negative) and ids[i] in by_id])
    exs = [by_id[ids[i]] for i in rows]
    y = np.asarray([labels[i] == positive for i in rows], dtype=np.int64)
    pol = [ex.get("question_polarity") for ex in exs]
    pairs = pair_index(y, [ex.get("pair_id") for ex in exs], None if any(p is None for p in pol) else pol)
    groups = np.asarray([str(ex.get("template_id")) for ex in exs])
    boot = ClusterBootstrap(groups, n_boot, seed) if n_boot else None
    out: dict[str, list] = {}
    for L in direction.layers:
        X = cache.load(f"{direction.site_kind}.{L}", position, rows)
        for k, v in paired_metrics(X @ direction.unit_at(L), pairs, groups, boot).items():
            out.setdefault(k, []).append(v)
    return out


def _at(per_layer: dict[str, list], key: str, i: int) -> Any:
    v = per_layer.get(key)
    return None if v is None else v[i]


def layer_table(directions: dict[str, Direction], names: Sequence[str] = TABLE_DIRECTIONS,
                controls: Sequence[str] = CONTROLS, probe: str = "mean_diff") -> list[dict[str, Any]]:
    """One row per (direction, layer): probe vs lexical accuracy, selectivity, paired accuracy, control cosines."""
    rows = []
    for name in names:
        d = directions.get(name)
        if d is None:
            continue
        m = d.metrics.get("per_layer", {}).get(probe, {})
        lex = d.metrics.get("lexical", {})
        pol_keys = sorted(k for k in m if k.startswith("paired_accuracy_") and not k.endswith(("_lo", "_hi")))
        for i, L in enumerate(d.layers):
            row = {"direction": name, "layer": L, "probe_accuracy": _at(m, "accuracy", i),
                   "probe_accuracy_lo": _at(m, "accuracy_lo", i), "probe_accuracy_hi": _at(m, "accuracy_hi", i),
                   "lexical_accuracy": lex.get("accuracy"), "lexical_accuracy_lo": lex.get("accuracy_lo"),
                   "lexical_accuracy_hi": lex.get("accuracy_hi"), "selectivity": _at(m, "selectivity", i),
                   "selectivity_lo": _at(m, "selectivity_lo", i), "selectivity_hi": _at(m, "selectivity_hi", i),
                   "paired_accuracy": _at(m, "paired_accuracy", i), "paired_accuracy_lo": _at(m, "paired_accuracy_lo", i),
                   "paired_accuracy_hi": _at(m, "paired_accuracy_hi", i), "n_pairs": _at(m, "n_pairs", i)}
            row.update({k + s: _at(m, k + s, i) for k in pol_keys for s in ("", "_lo", "_hi")})
            for c in controls:
                if c in directions and L in directions[c].layers:
                    cd = directions[c]
                    row[f"cos_{c}"] = float(d.unit_at(L).astype(np.float64) @ cd.unit_at(L).astype(np.float64))
                    row[f"{c}_paired_accuracy"] = _at(cd.metrics.get("identity_paired", {}), "paired_accuracy",
                                                      cd.row(L))
            row["selected"] = L == d.metrics.get("selected_layer")
            rows.append(row)
    return rows
