"""Residual-stream interventions as context managers that always remove their hooks (on error too).

Three edits, all applied to the output of block L (``resid_post.L``) by a forward hook on
``models.find_blocks(model)[L]``:

- ``add(loaded, direction, layers, dose, positions)``: ``h += dose * unit_L * resid_norm_L``;
- ``ablate(loaded, direction, layers=None)``: ``h -= (h . u_L) u_L`` (projection set to 0);
- ``clamp(loaded, direction, layers, value)``: ``h += (value - h . u_L) u_L`` (projection set to ``value``).

Every edit is per row: ``dose``/``value`` may be a scalar or one value per row (an array of length N),
and the vectors may differ per row (``Intervention`` with ``[N, D]`` tensors), so many conditions and
doses are scored in one batched forward. Rows are the rows of the scorer's input list: the scorer
calls ``handle.before_batch(lo, hi)`` before each forward over rows ``[lo, hi)``, or
``handle.before_batch(rows)`` with the input-row index of each batch row when it batches rows out of
order (length-sorted, ``models.batching``); without it, rows are the batch rows.

Positions (``all``, ``prompt``, ``response``):
- with ``spans=`` (a list of ``ChatEncoding``, one per row) a full-sequence forward is edited at
  ``[0, response_start)`` (prompt) or ``[response_start, response_end)`` (response); padding on
  either side is handled from the forward's 2-D attention mask;
- without spans (generation), ``prompt`` is the prompt forward (empty KV cache) and ``response``
  every later, cached forward (the generated tokens). ``all`` edits both, so with ``add(...,
  positions="all")`` the first generated token is already steered (its logits come from the prompt
  forward). With ``response`` the first new token is *not* steered (it is predicted by the prompt
  forward); tokens 2.. are.
A forward whose KV cache is not empty is always treated as generated tokens.

Ablation and the embedding: hooks sit on block outputs. With ``ablate(..., layers=None)`` every
block output where the direction has a vector is edited, so every ``resid_post.L`` (= ``resid_pre.L+1``)
reading of the direction is zero. ``resid_pre.0`` (the embedding) is left alone by default because
block 0 reads it before any edit; pass ``embedding=True`` to project it out there too (using the
direction's first layer, or ``source_layer``) for a full "directional ablation" in the style of
Arditi et al. (2024).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.loading import find_blocks

EDIT_POSITIONS = ("all", "prompt", "response")  # where an edit applies (not the cache positions of activations.sites)


def _as_rows(x: Any, what: str) -> torch.Tensor:
    """A scalar or per-row sequence -> float64 tensor [N] (N = 1 for a scalar)."""
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if t.ndim == 0:
        t = t.reshape(1)
    if t.ndim != 1:
        raise ValueError(f"{what} must be a scalar or one value per row (1-D), got shape {tuple(t.shape)}")
    return t


def _vec(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _decoder(loaded_or_model: Any) -> tuple[Any, Any]:
    """(the HF model, its decoder module that owns the blocks, embeds and is called with attention_mask)."""
    model = getattr(loaded_or_model, "model", loaded_or_model)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    dec = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", base)
    return model, dec


@dataclass
class LayerEdit:
    """Per-row edit at one layer. ``add`` [N|1, D]; ``unit`` [N|1, D] and ``value`` [N|1] for a clamp."""

    add: torch.Tensor | None = None
    unit: torch.Tensor | None = None
    value: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.add is not None and self.add.ndim == 1:
            self.add = self.add[None]
        if self.unit is not None:
            if self.unit.ndim == 1:
                self.unit = self.unit[None]
            self.value = torch.zeros(1, dtype=torch.float64) if self.value is None else _as_rows(self.value, "value")


@dataclass
class Intervention:
    """Hooks editing ``resid_post.L`` for each ``L`` in ``edits`` (and optionally the embedding output).

    Use as a context manager; ``before_batch(lo, hi)`` selects the rows of per-row tensors.
    """

    loaded: Any
    edits: dict[int, LayerEdit]
    positions: str = "all"
    spans: Sequence[Any] | None = None
    embedding_edit: LayerEdit | None = None
    _handles: list = field(default_factory=list, repr=False)
    _rows: torch.Tensor | None = field(default=None, repr=False)
    _mask: torch.Tensor | None = field(default=None, repr=False)
    calls: int = 0

    def __post_init__(self) -> None:
        if self.positions not in EDIT_POSITIONS:
            raise ValueError(f"positions={self.positions!r}; use one of {', '.join(EDIT_POSITIONS)}")
        n_blocks = len(find_blocks(self.loaded.model if hasattr(self.loaded, "model") else self.loaded))
        bad = [L for L in self.edits if not 0 <= int(L) < n_blocks]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {n_blocks}-block model (layers 0..{n_blocks - 1})")

    # -- rows -------------------------------------------------------------------------------------
    def before_batch(self, lo: int | Sequence[int], hi: int | None = None) -> None:
        """Select the rows of every per-row tensor for the next forward pass: ``[lo, hi)``, or
        ``before_batch(rows)`` with the input-row index of each batch row (any order, repeats allowed)."""
        if hi is None:
            self._rows = torch.as_tensor([int(r) for r in lo], dtype=torch.long)
        else:
            self._rows = torch.arange(int(lo), int(hi))

    def _row_index(self, n: int) -> torch.Tensor:
        return self._rows if self._rows is not None else torch.arange(n)

    def _take(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        if t.shape[0] == 1:
            return t.expand(batch, *t.shape[1:])
        idx = self._row_index(t.shape[0])
        if idx.numel() != batch or (idx.numel() and int(idx.max()) >= t.shape[0]):
            raise ValueError(f"per-row intervention has {t.shape[0]} rows; the {idx.numel()} selected rows do not "
                             f"match a batch of {batch}; call before_batch(lo, hi) or before_batch(rows) before "
                             "each forward")
        return t[idx]

    # -- positions --------------------------------------------------------------------------------
    def _on_forward(self, module, args, kwargs) -> None:
        self.calls += 1
        ids = kwargs.get("input_ids", args[0] if args else None)
        emb = kwargs.get("inputs_embeds")
        ref = ids if ids is not None else emb
        b, t = ref.shape[0], ref.shape[1]
        cache = kwargs.get("past_key_values")
        past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
        if past > 0:  # a cached generation step: generated tokens
            on = self.positions in ("all", "response")
            self._mask = torch.full((b, t), float(on))
            return
        if self.positions == "all":
            self._mask = torch.ones(b, t)
            return
        if self.spans is None:  # prompt forward of a generation
            self._mask = torch.full((b, t), float(self.positions == "prompt"))
            return
        am = kwargs.get("attention_mask")
        offset = (am.long().argmax(-1).cpu() if am is not None and am.ndim == 2 else torch.zeros(b, dtype=torch.long))
        idx = self._row_index(len(self.spans))
        if idx.numel() != b or (idx.numel() and int(idx.max()) >= len(self.spans)):
            raise ValueError(f"spans hold {len(self.spans)} rows; the {idx.numel()} selected rows do not match a "
                             f"batch of {b}")
        rows = [self.spans[int(i)] for i in idx]
        mask = torch.zeros(b, t)
        for i, enc in enumerate(rows):
            o = int(offset[i])
            a, z = (0, enc.response_start) if self.positions == "prompt" else (enc.response_start, enc.response_end)
            mask[i, o + a:o + z] = 1.0
        self._mask = mask

    # -- the edit ---------------------------------------------------------------------------------
    def _apply(self, edit: LayerEdit, h: torch.Tensor) -> torch.Tensor:
        """The edit computed in float32 (projection and correction) and cast back to ``h``'s dtype: in
        bf16 a projection summed over D ~ 4k dims of a residual of norm ~1e3 keeps ~1e-2 of it."""
        b = h.shape[0]
        mask = self._mask
        if mask is None or mask.shape != h.shape[:2]:
            mask = torch.ones(h.shape[:2])
        f32 = {"device": h.device, "dtype": torch.float32}
        x = h.float()  # no copy when h is already float32
        m = mask.to(**f32)[..., None]
        if edit.add is not None:
            x = x + m * self._take(edit.add, b).to(**f32)[:, None, :]
        if edit.unit is not None:
            u = self._take(edit.unit, b).to(**f32)[:, None, :]
            v = self._take(edit.value, b).to(**f32)[:, None, None]
            proj = (x * u).sum(-1, keepdim=True)
            x = x + m * (v - proj) * u
        return x.to(h.dtype)

    def _block_hook(self, layer: int):
        edit = self.edits[layer]

        def hook(mod, args, out):
            if isinstance(out, (tuple, list)):
                return (self._apply(edit, out[0]), *out[1:])
            return self._apply(edit, out)
        return hook

    def __enter__(self) -> Intervention:
        model, dec = _decoder(self.loaded)
        blocks = find_blocks(model)
        try:
            self._handles.append(dec.register_forward_pre_hook(self._on_forward, with_kwargs=True))
            if self.embedding_edit is not None:
                emb_edit = self.embedding_edit
                self._handles.append(dec.get_input_embeddings().register_forward_hook(
                    lambda mod, args, out: self._apply(emb_edit, out)))
            for layer in sorted(self.edits):
                self._handles.append(blocks[int(layer)].register_forward_hook(self._block_hook(layer)))
        except BaseException:
            self.remove()
            raise
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._mask = None

    def __exit__(self, *exc) -> None:
        self.remove()


# ---------------------------------------------------------------------------------------------------
# Builders


def _layers(direction: Any, layers: int | Sequence[int] | None) -> list[int]:
    if layers is None:
        return list(direction.layers)
    return [int(layers)] if isinstance(layers, (int, np.integer)) else [int(x) for x in layers]


def add_vectors(direction: Any, layers: int | Sequence[int] | None, dose: Any) -> dict[int, LayerEdit]:
    """``{L: LayerEdit(add = dose[:, None] * unit_L * resid_norm_L)}`` for one direction (or one per row:
    ``direction`` may be a list of directions, one per row)."""
    dose_t = _as_rows(dose, "dose")
    out = {}
    for L in _layers(direction if not isinstance(direction, (list, tuple)) else direction[0], layers):
        if isinstance(direction, (list, tuple)):
            base = torch.stack([_vec(d.unit_at(L)) * d.norm_at(L) for d in direction])
        else:
            base = (_vec(direction.unit_at(L)) * direction.norm_at(L))[None]
        out[L] = LayerEdit(add=dose_t[:, None] * base)
    return out


def add(loaded: Any, direction: Any, layers: int | Sequence[int] | None, dose: Any, positions: str = "all",
        spans: Sequence[Any] | None = None) -> Intervention:
    """Add ``dose x unit x resid_norm(L)`` at ``layers``. ``dose``: scalar or one per row.

    ``with add(loaded, d, 12, 4.0): model.generate(...)`` or, for per-row doses,
    ``with add(loaded, d, 12, doses) as h: mean_logprobs(loaded, encs, before_batch=h.before_batch)``.
    """
    for d in (direction if isinstance(direction, (list, tuple)) else [direction]):
        d.validate_width(loaded.d_model)
    return Intervention(loaded, add_vectors(direction, layers, dose), positions, spans)


def clamp(loaded: Any, direction: Any, layers: int | Sequence[int] | None, value: Any = 0.0,
          positions: str = "all", spans: Sequence[Any] | None = None, embedding: bool = False,
          source_layer: int | None = None) -> Intervention:
    """Set the projection onto the direction to ``value`` at each layer.

    ``value``: scalar, one per row, or a dict ``{layer: scalar-or-per-row}`` (e.g. the base model's mean
    projection at each layer, from ``mean_projection``). ``source_layer``: use that layer's unit vector
    at every hooked layer (else each layer's own).
    """
    direction.validate_width(loaded.d_model)
    layer_list = _layers(direction, layers)

    def unit(L: int) -> torch.Tensor:
        return _vec(direction.unit_at(source_layer if source_layer is not None else L))

    def val(L: int) -> Any:
        return value[L] if isinstance(value, dict) else value

    edits = {L: LayerEdit(unit=unit(L), value=val(L)) for L in layer_list}
    emb = None
    if embedding:
        L0 = source_layer if source_layer is not None else layer_list[0]
        emb = LayerEdit(unit=unit(L0), value=0.0 if isinstance(value, dict) else value)
    return Intervention(loaded, edits, positions, spans, embedding_edit=emb)


def ablate(loaded: Any, direction: Any, layers: int | Sequence[int] | None = None, positions: str = "all",
           spans: Sequence[Any] | None = None, embedding: bool = False,
           source_layer: int | None = None) -> Intervention:
    """Project the direction out (projection := 0) at every layer it has (or ``layers``)."""
    return clamp(loaded, direction, layers, 0.0, positions, spans, embedding, source_layer)


@dataclass
class SteeringVector:
    """Vectors per layer (already scaled), applied with a multiplier, steering-vectors style."""

    layer_vectors: dict[int, Any]

    @classmethod
    def from_direction(cls, direction: Any, layers: int | Sequence[int] | None = None,
                       dose: float = 1.0) -> SteeringVector:
        return cls({L: _vec(direction.unit_at(L)) * direction.norm_at(L) * float(dose)
                    for L in _layers(direction, layers)})

    @contextlib.contextmanager
    def apply(self, loaded: Any, multiplier: float = 1.0, positions: str = "all",
              spans: Sequence[Any] | None = None) -> Iterator[Intervention]:
        edits = {int(L): LayerEdit(add=_vec(v) * float(multiplier)) for L, v in self.layer_vectors.items()}
        with Intervention(loaded, edits, positions, spans) as h:
            yield h


@torch.no_grad()
def projections(loaded: Any, direction: Any, layers: Sequence[int], encodings: Sequence[Any],
                batch_size: int = 16, positions: str = "all") -> dict[int, np.ndarray]:
    """Projection of ``resid_post.L`` onto the unit direction at each token of ``positions`` (pooled)."""
    from activations.hooks import capture
    from activations.sites import Site
    from models.chat import pad_batch

    model = loaded.model
    units = {L: torch.as_tensor(direction.unit_at(L), dtype=torch.float32) for L in layers}
    out: dict[int, list] = {L: [] for L in layers}
    pad = loaded.tokenizer.pad_token_id
    for lo in range(0, len(encodings), batch_size):
        encs = list(encodings[lo:lo + batch_size])
        batch = pad_batch(encs, pad, "right", loaded.device)
        with capture(model, [Site("resid_post", L) for L in layers]) as store:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  position_ids=batch["position_ids"], use_cache=False)
        for L in layers:
            p = (store[f"resid_post.{L}"].float().cpu() @ units[L])  # [B, T]
            for i, e in enumerate(encs):
                a, z = {"all": (0, len(e)), "prompt": (0, e.response_start),
                        "response": (e.response_start, e.response_end)}[positions]
                out[L].append(p[i, a:z].numpy())
    return {L: np.concatenate(v) if v else np.zeros(0) for L, v in out.items()}


def mean_projection(loaded: Any, direction: Any, layers: Sequence[int], encodings: Sequence[Any],
                    batch_size: int = 16, positions: str = "all") -> dict[int, float]:
    """The mean projection per layer (e.g. on the base model: the clamp target for ``clamp``)."""
    return {L: float(v.mean()) for L, v in projections(loaded, direction, layers, encodings, batch_size,
                                                         positions).items()}
