"""Artifacts: atomic writes, content hashes, JSON manifests, JSONL input, typed errors, folder locks and
kinds shared by every stage; the one resumable result store (``artifacts.store``) and the one score-row schema
(``artifacts.rows``)."""

from artifacts.atomic import atomic_path, atomic_write_json, atomic_write_text
from artifacts.errors import KindError, LockError, ResumeError, SelfModelError
from artifacts.folders import claim_folder, clear_folder, folder_kind
from artifacts.hashing import hash_file, hash_jsonable, hash_path
from artifacts.jsonl import InputError, read_jsonl, read_messages_jsonl
from artifacts.lock import folder_lock
from artifacts.manifest import library_versions, read_manifest, write_manifest

__all__ = [
    "InputError",
    "KindError",
    "LockError",
    "ResumeError",
    "SelfModelError",
    "atomic_path",
    "atomic_write_json",
    "atomic_write_text",
    "claim_folder",
    "clear_folder",
    "folder_kind",
    "folder_lock",
    "hash_file",
    "hash_jsonable",
    "hash_path",
    "library_versions",
    "read_jsonl",
    "read_manifest",
    "read_messages_jsonl",
    "write_manifest",
]
