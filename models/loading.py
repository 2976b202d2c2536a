"""Load a ``ModelSpec`` into a ready model and tokenizer.

Device defaults to the GPU when one is present; dtype defaults to float32, or bfloat16 on a GPU for
models over ~1B parameters. A LoRA adapter directory is loaded with peft on top of the base.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from artifacts import SelfModelError
from artifacts.manifest import MANIFEST
from models.spec import ModelSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # + "auto"


class ModelLoadError(SelfModelError):
    """A model or adapter that cannot be loaded; the message names the path and the fix."""


def looks_local(base: str) -> bool:
    """True when ``base`` is meant as a local folder (absolute, ./, ../, ~, or deeper than ``org/name``)."""
    return base.startswith(("/", "./", "../", "~", ".\\")) or base.count("/") > 1 or os.path.isabs(base)


def check_base(base: str) -> None:
    """A ``ModelLoadError`` for a local model path that does not exist (not a "bad hub id")."""
    if looks_local(base) and not Path(base).expanduser().exists():
        raise ModelLoadError(f"{base}: local model folder not found; give an existing folder (with config.json) "
                             "or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'")


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel, or a peft PeftModel wrapping one
    tokenizer: Any
    spec: ModelSpec

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def config(self) -> Any:
        return self.base_model.config

    @property
    def base_model(self) -> Any:
        """The underlying transformers model (unwrapping peft)."""
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    @property
    def n_layers(self) -> int:
        return len(find_blocks(self.model))

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    def active(self) -> contextlib.AbstractContextManager:
        """Select this model's adapter for a block. A model loaded alone always is (a no-op); a view of a
        shared model (``models.adapters``) switches the shared model to its adapter, or to none."""
        return contextlib.nullcontext()


def resolve_base(spec: ModelSpec) -> str:
    if spec.is_embedded:
        from models.embedded import embedded_dir

        return str(embedded_dir())
    return spec.base


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(spec: ModelSpec, config: Any, device: str) -> torch.dtype:
    if spec.dtype != "auto":
        if spec.dtype not in DTYPES:
            raise ValueError(f"model spec field 'dtype' is {spec.dtype!r}; use one of auto, {', '.join(DTYPES)}")
        return DTYPES[spec.dtype]
    if device.startswith("cuda"):
        approx_params = 12 * config.hidden_size**2 * config.num_hidden_layers
        return torch.bfloat16 if approx_params > 1e9 else torch.float32
    return torch.float32


def load_tokenizer(spec: ModelSpec) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_base(spec))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _check_adapter(spec: ModelSpec, base_config: Any) -> None:
    adir = Path(spec.adapter)
    if not (adir / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adir}: not a LoRA adapter directory (no adapter_config.json); "
                                "pass the directory written by scripts/tune_identity.py")
    manifest = adir / MANIFEST
    if manifest.exists():
        info = json.loads(manifest.read_text())
        want = info.get("params", {}).get("d_model") or info.get("d_model")
        base = info.get("params", {}).get("base") or info.get("base")
        if want is not None and int(want) != int(base_config.hidden_size):
            raise ValueError(f"{adir}: adapter was trained on a model of width {want} ({base}), but the base "
                             f"{spec.base} has width {base_config.hidden_size}; pass the matching base model")
        layers = info.get("params", {}).get("n_layers")
        if layers is not None and int(layers) != int(getattr(base_config, "num_hidden_layers", layers)):
            raise ValueError(f"{adir}: adapter was trained on a model with {layers} layers ({base}), but the base "
                             f"{spec.base} has {base_config.num_hidden_layers}; pass the matching base model")


def load_model(spec: ModelSpec | str | None = None, **overrides: Any) -> LoadedModel:
    """Load base (+ adapter) in eval mode. ``spec`` may be a ModelSpec or a base string."""
    if spec is None:
        spec = ModelSpec()
    elif isinstance(spec, str):
        spec = ModelSpec(base=spec)
    if overrides:
        spec = ModelSpec.from_dict({**spec.to_dict(), **overrides})
    from transformers import AutoConfig, AutoModelForCausalLM

    base_path = resolve_base(spec)
    check_base(base_path)
    if spec.adapter and not Path(spec.adapter).is_dir():
        raise ModelLoadError(f"{spec.adapter}: adapter folder not found; pass the folder written by "
                             "scripts/tune_identity.py")
    try:
        config = AutoConfig.from_pretrained(base_path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{base_path}: no model config could be read ({exc}); give a folder with config.json "
                             "or a hub id available offline") from None
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec, config, device)
    # loaded straight onto the device (no CPU copy first); "auto" spreads blocks over all visible GPUs
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": spec.device_map or device}
    try:
        model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{base_path}: the weights could not be loaded ({type(exc).__name__}: {exc}); "
                             "re-download or re-save the model folder") from None
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(f"{base_path}: a safetensors weight file is damaged ({exc}); re-download or re-save "
                             "the model folder") from None
    if spec.adapter:
        model = attach_adapter(model, spec, config)
    model.eval()
    tok = load_tokenizer(spec)
    return LoadedModel(model=model, tokenizer=tok, spec=spec)


def attach_adapter(model: Any, spec: ModelSpec, config: Any, name: str = "default") -> Any:
    """Attach the LoRA adapter ``spec.adapter`` to ``model`` under ``name``, unmerged; return the peft model.

    A plain model is wrapped (``PeftModel.from_pretrained``); a peft model gets one more adapter
    (``load_adapter``, not selected). The adapter's tensors are read onto the spec's device (with a
    ``device_map``: peft's default device) and copied into LoRA layers made beside each wrapped base layer,
    so with ``device_map="auto"`` every LoRA layer sits on its base layer's GPU.
    """
    _check_adapter(spec, config)
    from peft import PeftModel

    kw: dict[str, Any] = {"adapter_name": name}
    if not spec.device_map:
        kw["torch_device"] = resolve_device(spec.device)
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(spec.adapter, **kw)
        else:
            model = PeftModel.from_pretrained(model, spec.adapter, **kw)
    except RuntimeError as exc:  # size mismatch on load
        raise ModelLoadError(f"{spec.adapter}: adapter does not fit base model {spec.base}: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(f"{spec.adapter}: the adapter's safetensors file is damaged ({exc}); re-run "
                             "the tune that wrote it") from None
    return model


def find_blocks(model: Any) -> torch.nn.ModuleList:
    """The ModuleList of transformer blocks (decoder layers) of a HF causal LM, peft-wrapped or not."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    n = getattr(getattr(m, "config", None), "num_hidden_layers", None)
    for path in ("model.layers", "model.language_model.layers", "transformer.h", "gpt_neox.layers",
                 "model.decoder.layers"):
        obj = m
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    for mod in m.modules():  # fallback: the ModuleList as long as the layer count
        if isinstance(mod, torch.nn.ModuleList) and n is not None and len(mod) == n:
            return mod
    raise ValueError(f"could not find the transformer blocks of {type(m).__name__}")
