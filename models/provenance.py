"""Model provenance: content hashes of what a model spec computes with (base weights, adapter files).

Every artifact's manifest names its model through ``model_provenance``; caches, results and stage keys use
``spec_hash`` so that renaming a folder changes nothing while changing a weight or an adapter does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artifacts import hash_jsonable
from artifacts.hashing import hash_file, hash_path
from models.loading import resolve_base
from models.spec import ModelSpec

_WEIGHT_HASHES: dict[tuple, str] = {}


def weights_hash(spec: ModelSpec) -> str:
    """Content hash of the base weights (the GGUF file for the embedded model); memoised per process."""
    if spec.is_embedded:
        from models.embedded import gguf_path

        path = gguf_path()
    else:
        path = Path(resolve_base(spec))
        if not path.exists():  # a hub id resolved from the local hub cache: name + revision
            return hash_jsonable({"hub_id": spec.base})
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _WEIGHT_HASHES:
        _WEIGHT_HASHES[key] = hash_file(path) if path.is_file() else hash_path(path)
    return _WEIGHT_HASHES[key]


def model_provenance(spec: ModelSpec) -> dict[str, Any]:
    return {"model": spec.to_dict(), "weights_sha256": weights_hash(spec),
            "adapter_sha256": hash_path(spec.adapter) if spec.adapter else None}


def spec_hash(spec: ModelSpec) -> str:
    """The content hash of what a model spec computes with: base weights + adapter files (not folder names)."""
    prov = model_provenance(spec)
    return hash_jsonable({"weights": prov["weights_sha256"], "adapter": prov["adapter_sha256"],
                          "dtype": spec.dtype})


def content_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` plus the content hash (weights + adapter) of every model spec it names (a dict with ``base``
    and ``adapter``), so that results of another model under the same folder names are never reused."""
    hashes = {f"{k}_sha256": spec_hash(ModelSpec.from_dict(v)) for k, v in params.items()
              if isinstance(v, dict) and "base" in v and "adapter" in v}
    return {**params, **hashes}
