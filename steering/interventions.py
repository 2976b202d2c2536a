"""Residual-stream interventions as context managers that always remove their hooks (on error too).

An intervention is a set of **operators** ``(activation, parameters) -> activation`` applied at hook
points by forward hooks. Four are registered here (``OPERATORS``; a new one is one
``@operator(...)`` function, nothing else to edit):

- ``add``: ``h + v`` with ``v = Direction.vector_at(L, dose) = unit_L * resid_norm_L * dose``;
- ``ablate``: ``h - (h . u_L) u_L`` (projection set to 0);
- ``clamp``: ``h + (value - h . u_L) u_L`` (projection set to ``value``);
- ``patch``: ``h + (source - h) Q Q^T`` (``Q`` an orthonormal basis [d, k]), or ``source`` itself.

The public builders ``add(loaded, direction, layers, dose, positions)``, ``ablate``, ``clamp``, ``patch``
and ``intervention(loaded, direction, op, layers, dose, value, ...)`` (any registered direction operator)
return an ``Intervention``; ``a + b`` composes two (the terms of
``b`` run after those of ``a`` at a shared hook point), and ``loaded=None`` gives an unbound one whose
``edits`` the batched experiments stack per row (``stack_edits``, one row per arm). The experiment arms
(``steering.arms``) are built with these same builders.

Hook points: an edit along a direction at layer L applies where the direction was read,
``Direction.site_at(L)`` resolved by ``activations.sites.Site.block_output``: ``resid_post.L`` is the
output of block L, ``resid_pre.L`` the output of block L - 1 and ``resid_pre.0`` the embedding output
(key ``EMBEDDING``). ``edits`` maps a hook point to a ``LayerEdit``: its ``Term``s, in order.

Every edit is per row: ``dose``/``value`` may be a scalar or one value per row (an array of length N),
and the vectors may differ per row (``[N, D]`` parameters), so many conditions and doses are scored in one
batched forward. A term may also switch itself off for some rows (``Term.active``; rows of other arms).
Rows are the rows of the scorer's input list: the scorer calls ``handle.before_batch(lo, hi)`` before each
forward over rows ``[lo, hi)``, or ``handle.before_batch(rows)`` with the input-row index of each batch
row when it batches rows out of order (length-sorted, ``models.batching``); without it, rows are the
batch rows. Operators compute in float32 and the result is cast back to the stream's dtype.

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

Ablation and the embedding: with ``ablate(..., layers=None)`` every layer where a ``resid_post``
direction has a vector is edited, so every ``resid_post.L`` (= ``resid_pre.L+1``) reading of the
direction is zero. ``resid_pre.0`` (the embedding) is left alone by default because block 0 reads it
before any edit; pass ``embedding=True`` to project it out there too (using the direction's first layer,
or ``source_layer``) for a full "directional ablation" in the style of Arditi et al. (2024).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.loading import find_blocks

EDIT_POSITIONS = ("all", "prompt", "response")  # where an edit applies (not the cache positions of activations.sites)
EMBEDDING = -1  # the hook point of resid_pre.0: the embedding output


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


# ---------------------------------------------------------------------------------------------------
# Operators


@dataclass(frozen=True)
class Operator:
    """``fn(x, **params) -> x'``: ``x`` [B, T, D] float32; per-row params arrive as float32 [B, ...] rows
    (vectors [B, D], scalars [B]), fixed params as given. ``row_params`` names the per-row ones.
    ``params(direction, layer, dose, value) -> {name: array}``: one row's params for an edit along a
    direction (``None`` for an operator that is not built from a direction, such as ``patch``)."""

    name: str
    fn: Callable[..., torch.Tensor]
    row_params: tuple[str, ...]
    params: Callable[[Any, int, float, float], dict[str, Any]] | None = None


OPERATORS: dict[str, Operator] = {}


def operator(name: str, row_params: Sequence[str], params: Callable | None = None) -> Callable:
    """Register ``fn`` as the operator ``name`` (a decorator): the one place a new intervention is added.
    With ``params`` it is a direction operator: ``steer``, ``intervention`` and the experiment arms
    (``Arm.op = name``) build it with no other change."""
    def register(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in OPERATORS:
            raise ValueError(f"operator {name!r} is already registered")
        OPERATORS[name] = Operator(name, fn, tuple(row_params), params)
        return fn
    return register


@operator("add", ["vector"], lambda d, L, dose, value: {"vector": d.vector_at(L, dose)})
def _add(x: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    return x + vector[:, None, :]


@operator("ablate", ["unit"], lambda d, L, dose, value: {"unit": d.unit_at(L)})
def _ablate(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    u = unit[:, None, :]
    return x + (0.0 - (x * u).sum(-1, keepdim=True)) * u


@operator("clamp", ["unit", "value"], lambda d, L, dose, value: {"unit": d.unit_at(L), "value": value})
def _clamp(x: torch.Tensor, unit: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    u = unit[:, None, :]
    return x + (value[:, None, None] - (x * u).sum(-1, keepdim=True)) * u


@operator("patch", ["source"])
def _patch(x: torch.Tensor, source: torch.Tensor, basis: Any = None) -> torch.Tensor:
    if source.shape != x.shape:
        raise ValueError(f"patch: the forward has shape {tuple(x.shape)}, the source activations "
                         f"{tuple(source.shape)}; patch the same batch")
    if basis is None:
        return source
    q = torch.as_tensor(basis, dtype=x.dtype, device=x.device)
    return x + ((source - x) @ q) @ q.T


@dataclass
class Term:
    """One operator at one hook point: ``rows`` per-row parameters ([N|1, ...]), ``fixed`` shared ones,
    ``active`` [N|1] bool (None: every row) -- rows where the term is off are left untouched."""

    op: str
    rows: dict[str, torch.Tensor]
    fixed: dict[str, Any] = field(default_factory=dict)
    active: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}; registered: {', '.join(OPERATORS)}")
        need = OPERATORS[self.op].row_params
        if set(self.rows) != set(need):
            raise ValueError(f"operator {self.op!r} takes per-row params {list(need)}, got {sorted(self.rows)}")

    @property
    def n_rows(self) -> int:
        return max([t.shape[0] for t in self.rows.values()] + [1 if self.active is None else self.active.shape[0]])

    def map_rows(self, f: Callable[[torch.Tensor], torch.Tensor]) -> Term:
        return Term(self.op, {k: f(v) for k, v in self.rows.items()}, self.fixed,
                    None if self.active is None else f(self.active))


@dataclass
class LayerEdit:
    """The terms at one hook point, applied in order."""

    terms: list[Term] = field(default_factory=list)


Edits = dict[int, LayerEdit]  # hook point (block index, or EMBEDDING) -> its terms


def _compose(a: Edits, b: Edits) -> Edits:
    return {k: LayerEdit([*(a[k].terms if k in a else []), *(b[k].terms if k in b else [])])
            for k in sorted(set(a) | set(b))}


def stack_edits(per_row: Sequence[Edits]) -> Edits:
    """One edit per row (e.g. per arm; ``{}`` = no edit) -> per-row edits with one term per hook point and
    operator (``[N, ...]`` parameters, zeros and ``active=False`` in the rows without it). A term with
    ``fixed`` params cannot be stacked."""
    n = len(per_row)
    slots: dict[int, dict[str, dict[str, Any]]] = {}
    for i, edits in enumerate(per_row):
        for k, le in edits.items():
            for t in le.terms:
                if t.fixed or t.n_rows != 1:
                    raise ValueError(f"stack_edits: a {t.op!r} term with fixed params or several rows cannot be stacked")
                s = slots.setdefault(k, {}).setdefault(t.op, {"rows": {}, "active": torch.zeros(n, dtype=torch.bool)})
                if s["active"][i]:
                    raise ValueError(f"stack_edits: row {i} has two {t.op!r} terms at hook point {k}")
                for name, v in t.rows.items():
                    buf = s["rows"].setdefault(name, torch.zeros((n, *v.shape[1:]), dtype=torch.float64))
                    buf[i] = v[0]
                s["active"][i] = True if t.active is None else bool(t.active[0])
    return {k: LayerEdit([Term(op, s["rows"], active=s["active"]) for op, s in ops.items()])
            for k, ops in sorted(slots.items())}


def map_edits(edits: Edits, f: Callable[[torch.Tensor], torch.Tensor]) -> Edits:
    """Apply ``f`` to every per-row tensor (``expand_edits`` / ``subset_edits`` in ``steering.arms``)."""
    return {k: LayerEdit([t.map_rows(f) for t in le.terms]) for k, le in edits.items()}


@dataclass
class Intervention:
    """Hooks applying ``edits`` (hook point -> ``LayerEdit``) to ``loaded``'s stream.

    Use as a context manager; ``before_batch(lo, hi)`` selects the rows of per-row tensors. ``loaded=None``:
    unbound (build and compose only).
    """

    loaded: Any
    edits: Edits
    positions: str = "all"
    spans: Sequence[Any] | None = None
    _handles: list = field(default_factory=list, repr=False)
    _rows: torch.Tensor | None = field(default=None, repr=False)
    _mask: torch.Tensor | None = field(default=None, repr=False)
    calls: int = 0

    def __post_init__(self) -> None:
        if self.positions not in EDIT_POSITIONS:
            raise ValueError(f"positions={self.positions!r}; use one of {', '.join(EDIT_POSITIONS)}")
        if self.loaded is None:
            return
        n_blocks = len(find_blocks(self.loaded.model if hasattr(self.loaded, "model") else self.loaded))
        bad = [L for L in self.edits if L != EMBEDDING and not 0 <= int(L) < n_blocks]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {n_blocks}-block model (layers 0..{n_blocks - 1})")

    def __add__(self, other: Intervention) -> Intervention:
        """Both edits, ``other``'s after ``self``'s at a shared hook point (same model, positions, spans)."""
        if other.positions != self.positions or other.spans is not self.spans:
            raise ValueError("composing interventions with different positions/spans; build them with the same ones")
        if self.loaded is not None and other.loaded is not None and self.loaded is not other.loaded:
            raise ValueError("composing interventions on two different models")
        return Intervention(self.loaded if self.loaded is not None else other.loaded,
                            _compose(self.edits, other.edits), self.positions, self.spans)

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
        """Each term's operator computed in float32 and cast back to ``h``'s dtype (in bf16 a projection
        summed over D ~ 4k dims of a residual of norm ~1e3 keeps ~1e-2 of it), kept at the masked
        positions of the rows where the term is active."""
        b = h.shape[0]
        mask = self._mask
        on = None if mask is None or mask.shape != h.shape[:2] or bool(mask.all()) else mask.to(h.device).bool()
        f32 = {"device": h.device, "dtype": torch.float32}
        x = h.float()  # no copy when h is already float32
        for term in edit.terms:
            op = OPERATORS[term.op]
            new = op.fn(x, **{k: self._take(v, b).to(**f32) for k, v in term.rows.items()}, **term.fixed)
            keep = on
            if term.active is not None and not bool(term.active.all()):
                rows = self._take(term.active, b).to(h.device)[:, None]
                keep = rows.expand(b, h.shape[1]) if keep is None else keep & rows
            x = new if keep is None else torch.where(keep[..., None], new, x)
        return x.to(h.dtype)

    def _block_hook(self, layer: int):
        edit = self.edits[layer]

        def hook(mod, args, out):
            if isinstance(out, (tuple, list)):
                return (self._apply(edit, out[0]), *out[1:])
            return self._apply(edit, out)
        return hook

    def __enter__(self) -> Intervention:
        if self.loaded is None:
            raise ValueError("this intervention is unbound (loaded=None); build it with a model to apply it")
        model, dec = _decoder(self.loaded)
        blocks = find_blocks(model)
        try:
            self._handles.append(dec.register_forward_pre_hook(self._on_forward, with_kwargs=True))
            for layer in sorted(self.edits):
                module = dec.get_input_embeddings() if layer == EMBEDDING else blocks[int(layer)]
                self._handles.append(module.register_forward_hook(self._block_hook(layer)))
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


def hook_point(direction: Any, layer: int) -> int:
    """Where an edit along ``direction`` at ``layer`` applies: its site (``Direction.site_at``) resolved by
    ``Site.block_output`` (``EMBEDDING`` for ``resid_pre.0``)."""
    point = direction.site_at(int(layer)).block_output()
    return EMBEDDING if point is None else point


def _per_row(per_layer: Any, L: int, what: str) -> torch.Tensor:
    return _as_rows(per_layer[L] if isinstance(per_layer, dict) else per_layer, what)


def steer(direction: Any, op: str, layers: int | Sequence[int] | None = None, dose: Any = 0.0,
          value: Any = 0.0, source_layer: int | None = None) -> Edits:
    """The edits of the registered direction operator ``op`` (``add``, ``ablate``, ``clamp``, ...) along
    ``direction`` at ``layers`` (default: all of its layers), each at the direction's site. ``direction`` may
    be a list (one per row); ``dose`` / ``value``: scalar, one per row, or ``{layer: ...}``; ``source_layer``:
    read the direction at that layer for every hooked layer (its unit vector, for ablate/clamp)."""
    spec = OPERATORS.get(op)
    if spec is None or spec.params is None:
        ops = [k for k, o in OPERATORS.items() if o.params is not None]
        raise ValueError(f"op={op!r} is not a direction operator; registered: {', '.join(ops)}")
    dirs = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    out: Edits = {}
    for L in _layers(dirs[0], layers):
        doses, values = _per_row(dose, L, "dose"), _per_row(value, L, "value")
        n = max(len(dirs), len(doses), len(values))
        if any(k not in (1, n) for k in (len(dirs), len(doses), len(values))):
            raise ValueError(f"{op}: {len(dirs)} directions, {len(doses)} doses and {len(values)} values; give one "
                             "or one per row of each")
        at = L if source_layer is None else int(source_layer)
        rows = [spec.params(dirs[i % len(dirs)], at, float(doses[i % len(doses)]), float(values[i % len(values)]))
                for i in range(n)]
        params = {k: torch.stack([torch.as_tensor(np.asarray(r[k], dtype=np.float64)) for r in rows])
                  for k in spec.row_params}
        out = _compose(out, {hook_point(dirs[0], L): LayerEdit([Term(op, params)])})
    return out


def intervention(loaded: Any, direction: Any, op: str, layers: int | Sequence[int] | None = None, dose: Any = 0.0,
                 value: Any = 0.0, positions: str = "all", spans: Sequence[Any] | None = None,
                 embedding: bool = False, source_layer: int | None = None) -> Intervention:
    """The public builder behind ``add`` / ``ablate`` / ``clamp`` (and any registered direction operator):
    ``steer``'s edits on ``loaded`` (``None``: unbound). ``embedding``: also edit the embedding output, with
    the direction at ``source_layer`` or its first hooked layer (a full directional ablation)."""
    _check(loaded, direction)
    layer_list = _layers(direction[0] if isinstance(direction, (list, tuple)) else direction, layers)
    edits = steer(direction, op, layer_list, dose, value, source_layer)
    if embedding and EMBEDDING not in edits:
        L0 = source_layer if source_layer is not None else layer_list[0]
        emb = steer(direction, op, [L0], dose, 0.0 if isinstance(value, dict) else value)
        edits = _compose({EMBEDDING: next(iter(emb.values()))}, edits)
    return Intervention(loaded, edits, positions, spans)


def _check(loaded: Any, direction: Any) -> None:
    if loaded is not None:
        for d in (direction if isinstance(direction, (list, tuple)) else [direction]):
            d.validate_width(loaded.d_model)


def add(loaded: Any, direction: Any, layers: int | Sequence[int] | None, dose: Any, positions: str = "all",
        spans: Sequence[Any] | None = None) -> Intervention:
    """Add ``dose x unit x resid_norm(L)`` (``Direction.vector_at``) at ``layers``. ``dose``: scalar or one
    per row; ``direction``: one, or a list of one per row.

    ``with add(loaded, d, 12, 4.0): model.generate(...)`` or, for per-row doses,
    ``with add(loaded, d, 12, doses) as h: mean_logprobs(loaded, encs, before_batch=h.before_batch)``.
    """
    return intervention(loaded, direction, "add", layers, dose, positions=positions, spans=spans)


def clamp(loaded: Any, direction: Any, layers: int | Sequence[int] | None, value: Any = 0.0,
          positions: str = "all", spans: Sequence[Any] | None = None, embedding: bool = False,
          source_layer: int | None = None) -> Intervention:
    """Set the projection onto the direction to ``value`` at each layer.

    ``value``: scalar, one per row, or a dict ``{layer: scalar-or-per-row}`` (e.g. the base model's mean
    projection at each layer, from ``mean_projection``). ``source_layer``: use that layer's unit vector
    at every hooked layer (else each layer's own). ``embedding``: also at the embedding output.
    """
    return intervention(loaded, direction, "clamp", layers, value=value, positions=positions, spans=spans,
                        embedding=embedding, source_layer=source_layer)


def ablate(loaded: Any, direction: Any, layers: int | Sequence[int] | None = None, positions: str = "all",
           spans: Sequence[Any] | None = None, embedding: bool = False,
           source_layer: int | None = None) -> Intervention:
    """Project the direction out (projection := 0) at every layer it has (or ``layers``)."""
    return intervention(loaded, direction, "ablate", layers, positions=positions, spans=spans, embedding=embedding,
                        source_layer=source_layer)


def patch(loaded: Any, layer: int, source: torch.Tensor, basis: Any = None, site_kind: str = "resid_post",
          positions: str = "all", spans: Sequence[Any] | None = None) -> Intervention:
    """Replace the stream at ``site_kind.layer`` by ``h + (source - h) Q Q^T`` (``basis`` Q, [d, k]) or,
    with ``basis=None``, by ``source`` itself (the same batch shape as the forwards it edits)."""
    from activations.sites import Site

    point = Site(site_kind, int(layer)).block_output()
    edits = {EMBEDDING if point is None else point: LayerEdit([Term("patch", {"source": source}, {"basis": basis})])}
    return Intervention(loaded, edits, positions, spans)


@dataclass
class SteeringVector:
    """Vectors per hook point (already scaled), applied with a multiplier, steering-vectors style."""

    layer_vectors: dict[int, Any]

    @classmethod
    def from_direction(cls, direction: Any, layers: int | Sequence[int] | None = None,
                       dose: float = 1.0) -> SteeringVector:
        return cls({hook_point(direction, L): direction.vector_at(L, dose) for L in _layers(direction, layers)})

    @contextlib.contextmanager
    def apply(self, loaded: Any, multiplier: float = 1.0, positions: str = "all",
              spans: Sequence[Any] | None = None) -> Iterator[Intervention]:
        edits = {int(L): LayerEdit([Term("add", {"vector": _vec(v)[None] * float(multiplier)})])
                 for L, v in self.layer_vectors.items()}
        with Intervention(loaded, edits, positions, spans) as h:
            yield h


@torch.no_grad()
def projections(loaded: Any, direction: Any, layers: Sequence[int], encodings: Sequence[Any],
                batch_size: int = 16, positions: str = "all") -> dict[int, np.ndarray]:
    """Projection of the direction's site at each layer (``resid_post.L`` unless its ``site_kind`` says
    otherwise) onto its unit vector, at each token of ``positions`` (pooled)."""
    from activations.hooks import capture
    from models.chat import pad_batch

    model = loaded.model
    units = {L: torch.as_tensor(direction.unit_at(L), dtype=torch.float32) for L in layers}
    out: dict[int, list] = {L: [] for L in layers}
    pad = loaded.tokenizer.pad_token_id
    for lo in range(0, len(encodings), batch_size):
        encs = list(encodings[lo:lo + batch_size])
        batch = pad_batch(encs, pad, "right", loaded.device)
        with capture(model, [direction.site_at(L) for L in layers]) as store:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  position_ids=batch["position_ids"], use_cache=False)
        for L in layers:
            p = (store[direction.site_at(L).name].float().cpu() @ units[L])  # [B, T]
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
