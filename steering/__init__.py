"""Steering and ablation: does the self-model direction cause the tuned model's preferences?

- ``steering.interventions``: operators (``add``, ``ablate``, ``clamp``, ``patch``; ``operator`` registers
  a new one) and their builders, context managers (hooks always removed), per-row doses/vectors for batched
  scoring, KV-cache-aware positions for generation, ``SteeringVector``;
- ``steering.controls``: norm-matched random directions, negated directions;
- ``steering.arms`` / ``steering.scoring``: all conditions x doses of an item in batched forward passes;
- ``steering.coherence``: perplexity on neutral text + degenerate-generation guard;
- ``steering.experiment``: ``run_steering``, ``run_ablation`` (the pipeline's entry points);
- ``steering.effects``: effects, comparisons, BH, slopes, necessity (through ``stats.effects``);
- ``steering.rule``: the decision rule (``RULE``, ``decide``, ``verdict_table``);
- ``steering.reports``: the tables per readout, CSVs, figures and ``<kind>.md``.
"""

from steering.interventions import (
    OPERATORS,
    Intervention,
    SteeringVector,
    ablate,
    add,
    clamp,
    intervention,
    mean_projection,
    operator,
    patch,
)

__all__ = ["OPERATORS", "Intervention", "SteeringVector", "ablate", "add", "clamp", "intervention",
           "mean_projection", "operator", "patch"]
