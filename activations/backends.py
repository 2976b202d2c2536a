"""Backends that read residual-stream sites: ``hooks`` (default), ``transformer_lens``, ``nnsight``.

Each backend is a factory ``make(loaded, sites, **options) -> runner``; ``runner(batch)`` returns
{site name: float tensor [B, T, D]} for a batch from ``models.chat.pad_batch``. All three resolve a
site to the same tensor (tests prove it to 1e-4 in float32; TransformerLens re-implements attention
eagerly, so it matches exactly the same model in ``attn_implementation="eager"`` and to float32
rounding a model on the sdpa kernel). ``hooks`` runs on the loaded model itself; the other two wrap
``activations.runner.shared_model(loaded)``: new module objects over the SAME parameter and buffer tensors, so they cost no
copy of the weights and the loaded model's modules stay untouched.
"""

from __future__ import annotations

import importlib
from typing import Any

from activations.runner import Runner
from activations.sites import Site
from models.loading import LoadedModel

# backend name -> the module whose ``make_runner(loaded, sites, **options)`` builds its runner; imported on
# first use, so this registry imports no backend (and TransformerLens / nnsight load only when asked for)
BACKENDS: dict[str, str] = {
    "hooks": "activations.runner",
    "transformer_lens": "activations.backend_tl",
    "nnsight": "activations.backend_nnsight",
}
OPTIONS: dict[str, tuple[str, ...]] = {"hooks": (), "transformer_lens": (), "nnsight": ("remote",)}


def make_runner(name: str, loaded: LoadedModel, sites: list[Site], **options: Any) -> Runner:
    """The runner of backend ``name``; ``options`` are the backend's own (``nnsight``: ``remote``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    unknown = set(options) - set(OPTIONS[name])
    if unknown:
        raise ValueError(f"backend {name!r} has no option {', '.join(sorted(unknown))}; its options: "
                         f"{', '.join(OPTIONS[name]) or 'none'}")
    return importlib.import_module(BACKENDS[name]).make_runner(loaded, sites, **options)
