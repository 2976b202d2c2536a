"""Preventing a direction while a LoRA adapter is trained: forward hooks on block outputs.

``PreventSpec`` names a unit vector per layer and a mode, applied to ``resid_post.L`` (the output of
block L) at every position of every training forward, the way ``steering.interventions`` edits the
stream at inference (tuning may not import steering, so the two edits are written here):

- ``ablate``: ``h -= (h . u) u`` (the projection set to 0; no gradient flows along ``u`` at L);
- ``subtract``: ``h -= v`` with ``v`` the dose vector ``Direction.vector_at(L, dose)`` (= dose x mean
  residual norm x u, the one place a dose becomes a vector); ``amounts`` records dose x resid_norm.

The adapter is saved and evaluated *without* the hooks (the hooks only shape what is learnt), as in
concept-ablation fine-tuning. ``prevention(model, specs)`` is the context manager; its ``paused()``
switches the edit off for checkpoint measurements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from artifacts import hash_jsonable
from models.loading import find_blocks

MODES = ("ablate", "subtract")


@dataclass(frozen=True)
class PreventSpec:
    """Edit ``resid_post.L`` for each ``L`` in ``layers`` with ``units[i]`` (unit vectors [n, d])."""

    name: str
    layers: tuple[int, ...]
    units: Any  # [n_layers, d_model] array-like, normalised on use
    mode: str = "ablate"
    amounts: tuple[float, ...] = ()  # subtract: one per layer (dose x resid_norm; identifies the edit)
    vectors: Any = None  # subtract: the dose vectors [n_layers, d_model] (Direction.vector_at) it subtracts

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"PreventSpec {self.name!r}: mode={self.mode!r}; use one of {', '.join(MODES)}")
        u = np.asarray(self.units, dtype=np.float64)
        if u.ndim != 2 or u.shape[0] != len(self.layers):
            raise ValueError(f"PreventSpec {self.name!r}: units must be [n_layers={len(self.layers)}, d_model], "
                             f"got {u.shape}")
        if self.mode == "subtract" and (len(self.amounts) != len(self.layers) or self.vectors is None
                                        or np.shape(self.vectors) != u.shape):
            raise ValueError(f"PreventSpec {self.name!r}: mode 'subtract' needs one amount and one dose vector "
                             f"(vectors [n_layers, d_model]) per layer; build it with PreventSpec.from_direction")

    @classmethod
    def from_direction(cls, direction: Any, layers: int | Sequence[int] | None = None, mode: str = "ablate",
                       dose: float = 0.0, name: str | None = None) -> PreventSpec:
        """From a ``probes.directions.Direction`` (duck-typed): its unit vector at ``layers`` (default: the
        selected layer); ``subtract`` removes ``dose x resid_norm(L)`` along it."""
        if layers is None:
            layers = direction.metrics.get("selected_layer", direction.layers[len(direction.layers) // 2])
        layers = (int(layers),) if isinstance(layers, (int, np.integer)) else tuple(int(x) for x in layers)
        units = np.stack([direction.unit_at(L) for L in layers])
        sub = mode == "subtract"
        amounts = tuple(float(dose) * direction.norm_at(L) for L in layers) if sub else ()
        vectors = np.stack([direction.vector_at(L, dose) for L in layers]) if sub else None
        return cls(name or direction.name, layers, units, mode, amounts, vectors)

    def unit_vectors(self) -> np.ndarray:
        u = np.asarray(self.units, dtype=np.float64)
        return u / np.linalg.norm(u, axis=1, keepdims=True)

    def as_params(self) -> dict[str, Any]:
        """What identifies the edit (for a tune's manifest and cache key)."""
        return {"name": self.name, "layers": list(self.layers), "mode": self.mode, "amounts": list(self.amounts),
                "units_sha": hash_jsonable(np.round(self.unit_vectors(), 7).tolist())}


class Prevention:
    """The hooks of one or more ``PreventSpec``; ``enabled`` switches the edit (``paused()``)."""

    def __init__(self, model: Any, specs: Sequence[PreventSpec]):
        self.model, self.specs, self.enabled, self._handles = model, list(specs), True, []
        n = len(find_blocks(model))
        for s in self.specs:
            bad = [L for L in s.layers if not 0 <= L < n]
            if bad:
                raise ValueError(f"PreventSpec {s.name!r}: layers {bad} out of range for a {n}-block model")

    def _hook(self, unit: torch.Tensor, mode: str, vector: torch.Tensor | None):
        def edit(h: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return h
            if mode == "ablate":
                u = unit.to(device=h.device, dtype=h.dtype)
                return h - (h @ u)[..., None] * u
            return h - vector.to(device=h.device, dtype=h.dtype)

        def hook(mod, args, out):
            if isinstance(out, (tuple, list)):
                return (edit(out[0]), *out[1:])
            return edit(out)
        return hook

    def __enter__(self) -> Prevention:
        blocks = find_blocks(self.model)
        try:
            for s in self.specs:
                units = torch.as_tensor(s.unit_vectors())
                for i, L in enumerate(s.layers):
                    vector = torch.as_tensor(np.asarray(s.vectors)[i]) if s.mode == "subtract" else None
                    self._handles.append(blocks[L].register_forward_hook(self._hook(units[i], s.mode, vector)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        was, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = was


def prevention(model: Any, specs: PreventSpec | Sequence[PreventSpec] | None) -> Prevention:
    """Context manager: the specs' hooks on ``model``'s blocks (none for ``None``)."""
    if specs is None:
        specs = []
    elif isinstance(specs, PreventSpec):
        specs = [specs]
    return Prevention(model, specs)
