"""The direction contract: a named direction per layer, stored in safetensors with JSON metadata.

A ``Direction`` holds, for each of its layers (``resid_post.L`` unless ``site_kind`` says otherwise):
- ``raw`` [n_layers, d_model]: the unnormalised difference (e.g. mean(positive) - mean(negative));
- ``unit`` [n_layers, d_model]: ``raw`` / ||raw||;
- ``resid_norm`` [n_layers]: the mean residual-stream norm at that layer (doses are multiples of it);
- ``provenance`` (which cache, which labels, model spec) and ``metrics`` (per-layer probe scores).

A file holds several directions, tensors keyed ``<name>/raw``, ``<name>/unit``, ``<name>/resid_norm``
and one metadata entry ``<name>`` (JSON: layers, site_kind, position, d_model, provenance, metrics).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from activations.sites import SITE_KINDS, Site
from artifacts import SelfModelError, atomic_path
from artifacts.atomic import to_jsonable


class DirectionError(SelfModelError):
    pass


@dataclass
class Direction:
    name: str
    layers: list[int]
    raw: np.ndarray  # [n_layers, d_model]
    resid_norm: np.ndarray  # [n_layers]
    site_kind: str = "resid_post"
    position: str = "response_mean"
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.raw = np.asarray(self.raw, dtype=np.float32)
        self.resid_norm = np.asarray(self.resid_norm, dtype=np.float32)
        self.layers = [int(x) for x in self.layers]
        if self.raw.ndim != 2 or self.raw.shape[0] != len(self.layers):
            raise DirectionError(f"direction {self.name!r}: raw must be [n_layers={len(self.layers)}, d_model], "
                                 f"got {self.raw.shape}")
        if self.site_kind not in SITE_KINDS:
            raise DirectionError(f"direction {self.name!r}: site_kind={self.site_kind!r}; use one of {', '.join(SITE_KINDS)}")
        if self.resid_norm.shape != (len(self.layers),):
            raise DirectionError(f"direction {self.name!r}: resid_norm must have one value per layer")
        if not np.all(np.isfinite(self.raw)):
            raise DirectionError(f"direction {self.name!r}: raw holds NaN/inf at layers {self._bad(~np.isfinite(self.raw).all(1))}; "
                                 "re-extract it (check the cache for non-finite activations)")
        if self.raw.size and not np.all(np.linalg.norm(self.raw, axis=1) > 0):
            raise DirectionError(f"direction {self.name!r}: raw is zero at layers {self._bad(np.linalg.norm(self.raw, axis=1) == 0)}; "
                                 "a zero direction cannot be steered or ablated: re-extract it from two different conditions")
        ok = np.isfinite(self.resid_norm) & (self.resid_norm > 0)
        if not np.all(ok):
            raise DirectionError(f"direction {self.name!r}: resid_norm must be finite and > 0 (doses are multiples of it), "
                                 f"got {self.resid_norm[~ok].tolist()} at layers {self._bad(~ok)}; re-extract it")

    def _bad(self, mask: np.ndarray) -> list[int]:
        return [L for L, m in zip(self.layers, mask) if m]

    @property
    def d_model(self) -> int:
        return int(self.raw.shape[1])

    @property
    def unit(self) -> np.ndarray:
        n = np.linalg.norm(self.raw, axis=1, keepdims=True)
        return self.raw / np.where(n == 0, 1, n)

    def row(self, layer: int) -> int:
        if layer not in self.layers:
            raise DirectionError(f"direction {self.name!r} has no layer {layer}; it has layers {self.layers}")
        return self.layers.index(layer)

    def unit_at(self, layer: int) -> np.ndarray:
        return self.unit[self.row(layer)]

    def norm_at(self, layer: int) -> float:
        return float(self.resid_norm[self.row(layer)])

    def vector_at(self, layer: int, dose: float) -> np.ndarray:
        """The dose vector ``unit_L * resid_norm_L * dose`` at ``layer`` (float32 [d_model]): the one place
        a dose becomes a vector. Computed in float32, left to right (``(unit * norm) * dose``), as the
        steering experiments always have, so their scores do not move."""
        return self.unit_at(layer) * self.norm_at(layer) * float(dose)

    def site_at(self, layer: int) -> Site:
        """The activation site the direction was read at, and where an edit along it applies
        (``site_kind``.L; ``Site.block_output`` resolves it to a hook point)."""
        self.row(layer)
        return Site(self.site_kind, int(layer))

    def validate_width(self, d_model: int, what: str = "the model") -> None:
        if self.d_model != int(d_model):
            raise DirectionError(f"direction {self.name!r} has width {self.d_model} but {what} has width {d_model}; "
                                 "extract the direction from the same model (or one of the same architecture)")

    def validate_for(self, model_or_spec: Any) -> None:
        """Check width and layer range against a LoadedModel, a ModelSpec, or a HF model."""
        from models.loading import LoadedModel, find_blocks

        if isinstance(model_or_spec, LoadedModel):
            d, n = model_or_spec.d_model, model_or_spec.n_layers
        elif hasattr(model_or_spec, "base"):  # ModelSpec: read its config only
            from transformers import AutoConfig

            from models.loading import resolve_base

            cfg = AutoConfig.from_pretrained(resolve_base(model_or_spec))
            d, n = cfg.hidden_size, cfg.num_hidden_layers
        else:
            d, n = model_or_spec.config.hidden_size, len(find_blocks(model_or_spec))
        self.validate_width(d, f"model {getattr(model_or_spec, 'spec', model_or_spec)!s:.80}")
        bad = [x for x in self.layers if not 0 <= x < n]
        if bad:
            raise DirectionError(f"direction {self.name!r}: layers {bad} out of range for a {n}-block model")

    def meta(self) -> dict[str, Any]:
        return to_jsonable({"layers": self.layers, "site_kind": self.site_kind, "position": self.position,
                            "d_model": self.d_model, "provenance": self.provenance, "metrics": self.metrics})


def save_directions(path: str | os.PathLike, directions: list[Direction] | dict[str, Direction]) -> Path:
    dirs = list(directions.values()) if isinstance(directions, dict) else list(directions)
    tensors, meta = {}, {}
    for d in dirs:
        if "/" in d.name:
            raise DirectionError(f"direction name {d.name!r} must not contain '/'")
        tensors[f"{d.name}/raw"] = torch.from_numpy(d.raw.copy())
        tensors[f"{d.name}/unit"] = torch.from_numpy(d.unit.astype(np.float32))
        tensors[f"{d.name}/resid_norm"] = torch.from_numpy(d.resid_norm.copy())
        meta[d.name] = json.dumps(d.meta())
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def load_directions(path: str | os.PathLike) -> dict[str, Direction]:
    path = Path(path)
    if not path.exists():
        raise DirectionError(f"{path}: direction file not found; run scripts/train_probes.py first")
    out = {}
    try:
        f = safe_open(str(path), framework="pt")
    except Exception as exc:  # safetensors' own error type for torn or foreign files
        raise DirectionError(f"{path}: not a readable safetensors direction file ({type(exc).__name__}: {exc}); "
                             "re-run scripts/train_probes.py") from None
    with f:
        meta = f.metadata() or {}
        for name, js in meta.items():
            try:
                m = json.loads(js)
                raw, norm = f.get_tensor(f"{name}/raw").numpy(), f.get_tensor(f"{name}/resid_norm").numpy()
                layers = m["layers"]
            except DirectionError:
                raise
            except Exception as exc:
                raise DirectionError(f"{path}: direction {name!r} is damaged ({type(exc).__name__}: {exc}); "
                                     "re-run scripts/train_probes.py") from None
            try:
                out[name] = Direction(name=name, layers=layers, raw=raw, resid_norm=norm,
                                      site_kind=m.get("site_kind", "resid_post"), position=m.get("position", ""),
                                      provenance=m.get("provenance", {}), metrics=m.get("metrics", {}))
            except DirectionError as exc:
                raise DirectionError(f"{path}: {exc}") from None
    if not out:
        raise DirectionError(f"{path}: holds no directions (no metadata); was it written by save_directions?")
    return out


def load_direction(path: str | os.PathLike, name: str) -> Direction:
    dirs = load_directions(path)
    if name not in dirs:
        raise DirectionError(f"{path}: no direction {name!r}; it holds {', '.join(dirs)}")
    return dirs[name]
