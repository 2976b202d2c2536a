"""Probes and directions: difference-of-means and logistic probes per layer, and the direction file format.

Entry point: ``probes.run.run_probes`` (the pipeline's probes stage; ``scripts/train_probes.py``).
"""

from probes.directions import Direction, DirectionError, load_direction, load_directions, save_directions
from probes.estimators import LogisticProbe, MeanDiffProbe, ProbeError
from probes.evaluate import cross_validate, group_splits, select_layer
from probes.extract import contrast_direction, shift_direction

__all__ = [
    "Direction",
    "DirectionError",
    "LogisticProbe",
    "MeanDiffProbe",
    "ProbeError",
    "contrast_direction",
    "cross_validate",
    "group_splits",
    "load_direction",
    "load_directions",
    "save_directions",
    "select_layer",
    "shift_direction",
]
