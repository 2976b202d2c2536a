"""Steering and ablation: does the self-model direction cause the tuned model's preferences?

- ``steering.interventions``: ``add``, ``ablate``, ``clamp`` context managers (hooks always removed),
  per-row doses/vectors for batched scoring, KV-cache-aware positions for generation, ``SteeringVector``;
- ``steering.controls``: norm-matched random directions, negated directions;
- ``steering.arms`` / ``steering.scoring``: all conditions x doses of an item in batched forward passes;
- ``steering.coherence``: perplexity on neutral text + degenerate-generation guard;
- ``steering.experiment``: ``run_steering``, ``run_ablation`` (the pipeline's entry points);
- ``steering.effects``: effects, comparisons, BH, slopes, necessity (through ``stats.effects``);
- ``steering.rule``: the decision rule (``RULE``, ``decide``, ``verdict_table``);
- ``steering.reports``: the tables per readout, CSVs, figures and ``<kind>.md``.
"""

from steering.interventions import Intervention, SteeringVector, ablate, add, clamp, mean_projection

__all__ = ["Intervention", "SteeringVector", "ablate", "add", "clamp", "mean_projection"]
