"""Residual-stream activations: site names, backends (hooks, TransformerLens, nnsight) and the on-disk cache."""

from activations.cache import ActivationCache, CacheError, cache_activations
from activations.hooks import capture, run_with_sites
from activations.sites import POSITIONS, Site, check_positions, parse_sites

__all__ = [
    "POSITIONS",
    "ActivationCache",
    "CacheError",
    "Site",
    "cache_activations",
    "capture",
    "check_positions",
    "parse_sites",
    "run_with_sites",
]
