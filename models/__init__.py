"""Model specs, loading (hub id, local directory or the embedded default, plus a LoRA adapter; one base with
several adapters toggled: ``models.adapters``) and chat formatting."""

from models.adapters import SharedModel, each_model, load_adapters
from models.chat import ChatEncoding, encode_chat, pad_batch
from models.loading import LoadedModel, find_blocks, load_model, load_tokenizer
from models.spec import EMBEDDED, ModelSpec

__all__ = [
    "EMBEDDED",
    "ChatEncoding",
    "LoadedModel",
    "ModelSpec",
    "SharedModel",
    "each_model",
    "encode_chat",
    "find_blocks",
    "load_adapters",
    "load_model",
    "load_tokenizer",
    "pad_batch",
]
