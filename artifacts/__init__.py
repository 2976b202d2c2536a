"""Artifacts: atomic writes, content hashes, JSON manifests and JSONL input shared by every stage."""

from artifacts.atomic import atomic_path, atomic_write_json, atomic_write_text
from artifacts.hashing import hash_file, hash_jsonable, hash_path
from artifacts.jsonl import InputError, read_jsonl, read_messages_jsonl
from artifacts.manifest import library_versions, read_manifest, write_manifest

__all__ = [
    "InputError",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "hash_file",
    "hash_jsonable",
    "hash_path",
    "library_versions",
    "read_jsonl",
    "read_manifest",
    "read_messages_jsonl",
    "write_manifest",
]
