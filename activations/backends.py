"""Backends that read residual-stream sites: ``hooks`` (default), ``transformer_lens``, ``nnsight``.

Each backend is a factory ``make(loaded, sites, **options) -> runner``; ``runner(batch)`` returns
{site name: float tensor [B, T, D]} for a batch from ``models.chat.pad_batch``. All three resolve a
site to the same tensor (tests prove it to 1e-4 in float32; TransformerLens re-implements attention
eagerly, so it matches exactly the same model in ``attn_implementation="eager"`` and to float32
rounding a model on the sdpa kernel). ``hooks`` runs on the loaded model itself; the other two wrap
``shared_model(loaded)``: new module objects over the SAME parameter and buffer tensors, so they cost no
copy of the weights and the loaded model's modules stay untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from activations.hooks import run_with_sites
from activations.sites import Site
from models.loading import LoadedModel

Runner = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def shared_model(loaded: LoadedModel) -> torch.nn.Module:
    """A copy of ``loaded``'s transformers model whose modules are new objects but whose parameters and
    buffers ARE the loaded ones (same tensors, same storage): no weight is copied.

    For a backend that rewires modules in place (TransformerBridge swaps them, nnsight replaces
    ``forward``), so the shared ``LoadedModel`` and every hook on it stay untouched. A peft model is not
    merged: the copy keeps peft's LoRA layers, whose forward adds the adapter, with the adapter state
    (active adapter, enabled or disabled) of the moment it is made; make a new runner after toggling an
    adapter. Only the module objects, the config and small non-tensor attributes are duplicated."""
    model = loaded.model  # (a view of a model shared between adapters checks here that its adapter is selected)
    if hasattr(model, "get_base_model"):  # peft: the transformers model with the LoRA layers injected
        model = model.get_base_model()
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo).eval()


def _hooks(loaded: LoadedModel, sites: list[Site]) -> Runner:
    return lambda batch: run_with_sites(loaded.model, batch, sites)


def _transformer_lens(loaded: LoadedModel, sites: list[Site]) -> Runner:
    from activations.backend_tl import make_runner

    return make_runner(loaded, sites)


def _nnsight(loaded: LoadedModel, sites: list[Site], remote: bool | str = False) -> Runner:
    from activations.backend_nnsight import make_runner

    return make_runner(loaded, sites, remote=remote)


BACKENDS: dict[str, Callable[..., Runner]] = {
    "hooks": _hooks,
    "transformer_lens": _transformer_lens,
    "nnsight": _nnsight,
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
    return BACKENDS[name](loaded, sites, **options)
