"""nnsight backend: one ``trace`` per batch saving block inputs (``resid_pre``) and outputs
(``resid_post``).

The model is ``runner.shared_model(loaded)``: new module objects over the loaded model's own
parameter tensors (nnsight installs its own ``forward`` on every module it wraps; the weights are not
copied), wrapped with the loaded tokenizer as ``nnsight``'s ``TransformersModel`` (what the
deprecated ``LanguageModel`` now is). The trace gets the padded batch's input_ids, attention_mask
and position_ids as they are, and stops right after the deepest needed block.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from activations.runner import Runner, shared_model
from activations.sites import Site
from models.loading import LoadedModel, find_blocks, looks_local


def wrap(loaded: LoadedModel, remote: bool | str = False) -> tuple[Any, Any]:
    """(nnsight model, the envoy of its block list). Run here or with ``remote="local"``: over ``loaded``'s
    weights (shared, not copied). ``remote=True`` / a host URL: by hub id (``loaded.spec.base``), with
    nnsight's meta-device model: no weights here, NDIF's server holds them."""
    from nnsight.modeling.transformers import TransformersModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if remote in (False, "local"):
            nn_model = TransformersModel(shared_model(loaded), tokenizer=loaded.tokenizer, task="text-generation")
        else:
            spec = loaded.spec
            if looks_local(spec.base):
                raise ValueError(f"{spec.base}: a remote (NDIF) trace runs a model NDIF hosts, named by its hub id; a "
                                 "local folder cannot be sent. Use a hub id, or remote='local' to dry-run the path here")
            if spec.adapter:
                raise ValueError(f"{spec.adapter}: a remote (NDIF) trace runs the hosted base model; sending a LoRA "
                                 "adapter is not wired. Cache the base remotely, or run the adapter locally")
            nn_model = TransformersModel(spec.base, tokenizer=loaded.tokenizer)
    blocks = find_blocks(nn_model._module)
    path = next(n for n, m in nn_model._module.named_modules() if m is blocks)
    envoy = nn_model
    for part in path.split("."):
        envoy = getattr(envoy, part)
    return nn_model, envoy


def make_runner(loaded: LoadedModel, sites: list[Site], remote: bool | str = False) -> Runner:
    """``remote``: False runs the trace here; ``"local"`` runs nnsight's remote path here (the trace is serialised
    and deserialised as for NDIF, with this project's modules hidden, then run on the local model: a dry run);
    True (or an NDIF host URL) sends it to NDIF (``NDIF_API_KEY``): what leaves the machine is the traced code
    (which sites to save), the token ids, attention mask and position ids of each batch; the saved tensors come
    back; the weights stay on the server."""
    nn_model, blocks = wrap(loaded, remote)
    # nnsight serves values in execution order: block L's input comes before its output. Plain values only:
    # a remote trace ships the variables its body reads, and the server lacks this project's modules.
    order = [(s.name, s.layer, s.kind == "resid_pre") for s in sorted(sites, key=lambda s: (s.layer, s.kind != "resid_pre"))]
    options = {"remote": remote} if remote else {}

    def run(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, Any] = {}
        with torch.no_grad(), nn_model.trace(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                             position_ids=batch["position_ids"], use_cache=False, **options) as tracer:
            for name, layer, pre in order:
                block = blocks[layer]
                out[name] = (block.input if pre else block.output).save()
            tracer.stop()
        return {s.name: out[s.name][0] if isinstance(out[s.name], tuple) else out[s.name] for s in sites}

    return run
