"""What every activation backend shares: the ``Runner`` type, the ``hooks`` backend's runner, and
``shared_model`` (new module objects over the loaded model's own tensors, for backends that rewire modules).
The backend registry (``activations.backends``) and the backends import this module; it imports none of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

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


def make_runner(loaded: LoadedModel, sites: list[Site]) -> Runner:
    """The ``hooks`` backend: forward hooks on the loaded model itself."""
    return lambda batch: run_with_sites(loaded.model, batch, sites)
