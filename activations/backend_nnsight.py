"""nnsight backend: one ``trace`` per batch saving block inputs (``resid_pre``) and outputs
(``resid_post``).

The model is ``backends.shared_model(loaded)``: new module objects over the loaded model's own
parameter tensors (nnsight installs its own ``forward`` on every module it wraps; the weights are not
copied), wrapped with the loaded tokenizer as ``nnsight``'s ``TransformersModel`` (what the
deprecated ``LanguageModel`` now is). The trace gets the padded batch's input_ids, attention_mask
and position_ids as they are, and stops right after the deepest needed block.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from activations.backends import Runner, shared_model
from activations.sites import Site
from models.loading import LoadedModel, find_blocks


def wrap(loaded: LoadedModel) -> tuple[Any, Any]:
    """(nnsight model over ``loaded``'s weights (shared, not copied), the envoy of its block list)."""
    from nnsight.modeling.transformers import TransformersModel

    model = shared_model(loaded)
    blocks = find_blocks(model)
    path = next(n for n, m in model.named_modules() if m is blocks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nn_model = TransformersModel(model, tokenizer=loaded.tokenizer, task="text-generation")
    envoy = nn_model
    for part in path.split("."):
        envoy = getattr(envoy, part)
    return nn_model, envoy


def make_runner(loaded: LoadedModel, sites: list[Site]) -> Runner:
    nn_model, blocks = wrap(loaded)
    # nnsight serves values in execution order: block L's input comes before its output.
    order = sorted(sites, key=lambda s: (s.layer, s.kind != "resid_pre"))

    def run(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, Any] = {}
        with torch.no_grad(), nn_model.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                             position_ids=batch["position_ids"], use_cache=False) as tracer:
            for s in order:
                block = blocks[s.layer]
                out[s.name] = (block.input if s.kind == "resid_pre" else block.output).save()
            tracer.stop()
        return {s.name: out[s.name][0] if isinstance(out[s.name], tuple) else out[s.name] for s in sites}

    return run
