"""Model specs, loading (hub id, local directory or the embedded default, plus a LoRA adapter) and chat formatting."""

from models.chat import ChatEncoding, encode_chat, pad_batch
from models.loading import LoadedModel, find_blocks, load_model, load_tokenizer
from models.spec import EMBEDDED, ModelSpec

__all__ = [
    "EMBEDDED",
    "ChatEncoding",
    "LoadedModel",
    "ModelSpec",
    "encode_chat",
    "find_blocks",
    "load_model",
    "load_tokenizer",
    "pad_batch",
]
