"""Probes and directions: difference-of-means and logistic probes per layer, and the direction file format."""

from probes.directions import Direction, DirectionError, load_direction, load_directions, save_directions

__all__ = ["Direction", "DirectionError", "load_direction", "load_directions", "save_directions"]
