"""Directions from activation caches: contrasts between conditions, and what fine-tuning wrote.

- ``contrast_direction(cache, name, positive, negative, position, examples=...)``: per layer, the raw
  difference mean(positive rows) - mean(negative rows), the mean residual norm over those rows, and the
  held-out metrics of each probe (family x phrasing splits, paired accuracy, the lexical baseline and
  selectivity when the cached examples are given); ``metrics["selected_layer"]`` by
  ``evaluate.select_layer``. ``remove={name: Direction}`` projects their span out (``self_model_orth``).
- ``shift_direction(base_cache, tuned_cache, name)``: per layer, mean over prompts of (tuned - base)
  activation on the same prompts (rows matched by id), with probes separating tuned from base rows
  cross-validated by prompt (both copies of a prompt always fall in the same fold).

Sign conventions: a contrast points from ``negative`` to ``positive`` (``self_model``: towards the
conscious answers); a shift points from the base model towards the tuned model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from activations import ActivationCache, CacheError
from probes.directions import Direction
from probes.estimators import DIRECTION_SOURCES, ProbeError, direction_from
from probes.evaluate import (
    LATE_FRACTION,
    PHRASING_SPLITS,
    ClusterBootstrap,
    Splits,
    cross_validate,
    make_splits,
    pair_index,
    paired_metrics,
    select_layer,
    selectivity,
)
from probes.geometry import orthonormal_basis, project_out
from probes.lexical import answer_text, lexical_baseline

SELECTION_RULE = (f"best selectivity (held-out accuracy of the mean_diff probe minus that of the lexical baseline on "
                  f"the same splits; accuracy alone when there is no answer text) among the first {LATE_FRACTION:.0%} "
                  "of layers; ties broken by paired accuracy, then AUROC, then the earlier layer")
METRIC_KEYS = ("accuracy", "accuracy_lo", "accuracy_hi", "auroc", "auroc_lo", "auroc_hi", "fold_accuracy_sd",
               "n", "n_families", "n_folds")
PER_ROW = ("oof", "correct")  # arrays cross_validate returns beside its scalar metrics
BACKENDS = ("sklearn", "torch")  # torch: probes.torch_probes, all layers at once (same metrics, same splits)


def check_layers(cache: ActivationCache, layers: Sequence[int] | None, site_kind: str = "resid_post") -> list[int]:
    held = [int(s.split(".")[1]) for s in cache.sites if s.startswith(site_kind + ".")]
    if layers is None:
        if not held:
            raise CacheError(f"{cache.path}: holds no {site_kind}.* sites (it holds {', '.join(cache.sites)}); "
                             f"re-cache with sites='{site_kind}.*'")
        return held
    missing = [int(L) for L in layers if int(L) not in held]
    if missing:
        raise CacheError(f"{cache.path}: layers {missing} are not in this cache ({site_kind} layers held: {held}); "
                         f"choose among those or re-cache with sites='{site_kind}.*'")
    return [int(L) for L in layers]


def _n_model_layers(cache: ActivationCache) -> int | None:
    return cache.manifest.get("n_layers")


@dataclass
class Design:
    """Everything a per-layer evaluation needs besides the activations: labels, families, splits, pairs,
    question polarity and the lexical baseline's held-out result on the same splits."""

    y: np.ndarray
    groups: np.ndarray
    splits: Splits
    split: dict[str, Any]
    pairs: list | None = None
    polarity: list | None = None
    lexical: dict[str, Any] | None = None


def make_design(y, groups, *, phrasings: Sequence[Any] | None = None, pairs: Sequence[Any] | None = None,
                polarity: Sequence[Any] | None = None, texts: Sequence[str] | None = None, n_splits: int = 5,
                phrasing_splits: int = PHRASING_SPLITS, n_boot: int = 500, seed: int = 0) -> Design:
    """Splits (family x phrasing when ``phrasings`` are given) and, with ``texts``, the lexical baseline."""
    y = np.asarray(y)
    groups = np.asarray([str(g) for g in groups])
    splits, info = make_splits(groups, y, phrasings, n_splits, phrasing_splits)
    pairs = None if pairs is None or all(p is None for p in pairs) else list(pairs)
    polarity = None if polarity is None or any(p is None for p in polarity) else list(polarity)
    lexical = None
    if texts is not None and any(t for t in texts):
        lexical = lexical_baseline(texts, y, groups, splits, pairs=pairs, polarity=polarity, n_boot=n_boot,
                                   seed=seed)
    return Design(y, groups, splits, info, pairs, polarity, lexical)


def fit_layers(load, design: Design, layers: list[int], probes: Sequence[str], n_boot: int = 500, seed: int = 0,
               desc: str = "probe", probe_kwargs: dict[str, dict] | None = None,
               remove: Callable[[int], np.ndarray] | None = None, backend: str = "sklearn",
               device: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """For each layer: X = load(L); returns raw mean-diff rows, residual norms and per-probe metric lists.

    ``remove(L)``: vectors whose span is projected out of the direction at layer L (raw and mean_diff probe).
    ``backend="torch"``: the probes are fitted for all layers at once by ``probes.torch_probes`` on ``device``
    (the sklearn path stays for ``remove`` and ``probe_kwargs``); held-out accuracy agrees within 0.01.
    """
    if backend not in BACKENDS:
        raise ProbeError(f"unknown probe backend {backend!r}; use one of {', '.join(BACKENDS)}")
    y = design.y
    raws, norms = [], []
    per_probe: dict[str, dict[str, list]] = {p: {} for p in probes}
    if remove is not None and set(probes) - {"mean_diff"}:
        raise ProbeError("a direction with a span projected out is evaluated with the mean_diff probe only")
    batched = backend == "torch" and remove is None and not probe_kwargs
    held = []
    for L in tqdm(layers, desc=desc, unit="layer", leave=False):
        X = load(L)
        raw = X[y == 1].mean(0, dtype=np.float64) - X[y == 0].mean(0, dtype=np.float64)
        basis = None if remove is None else orthonormal_basis(remove(L))
        raws.append(raw if basis is None else project_out(raw, basis))
        norms.append(float(np.linalg.norm(X, axis=1).mean()))
        if batched:
            held.append(X)
            continue
        for p in probes:
            kw = dict((probe_kwargs or {}).get(p) or {})
            if basis is not None:
                kw["remove"] = basis
            m = cross_validate(p, X, y, design.groups, n_boot=n_boot, seed=seed, probe_kwargs=kw,
                               splits=design.splits, pairs=design.pairs, polarity=design.polarity)
            _add_metrics(per_probe[p], m, design, n_boot, seed)
    if batched and held:
        from probes.torch_probes import cross_validate_layers

        boot = ClusterBootstrap(design.groups, n_boot, seed) if n_boot else None  # cross_validate's draws
        pairs = None if design.pairs is None else pair_index(y, design.pairs, design.polarity)
        for p in probes:
            for m in cross_validate_layers(p, np.stack(held), y, design.groups, design.splits, n_boot=n_boot,
                                           seed=seed, device=device):
                m.pop("C", None)
                if pairs is not None:
                    m.update(paired_metrics(m["oof"], pairs, design.groups, boot))
                _add_metrics(per_probe[p], m, design, n_boot, seed)
    return np.asarray(raws, dtype=np.float32), np.asarray(norms, dtype=np.float32), per_probe


def _add_metrics(into: dict[str, list], m: dict[str, Any], design: Design, n_boot: int, seed: int) -> None:
    """Append one layer's metrics (with the selectivity against the lexical baseline) to the per-probe lists."""
    if design.lexical is not None:
        m.update(selectivity(m["correct"], design.lexical["correct"], design.groups, n_boot, seed))
    for k, v in m.items():
        if k not in PER_ROW:
            into.setdefault(k, []).append(v)


def _metrics(layers: list[int], per_probe: dict[str, dict[str, list]], n_model_layers: int | None,
             design: Design) -> dict:
    out: dict[str, Any] = {"per_layer": per_probe, "layers": layers, "selection_rule": SELECTION_RULE,
                           "split": design.split}
    if design.lexical is not None:
        out["lexical"] = {k: v for k, v in design.lexical.items() if k not in PER_ROW}
    for p, m in per_probe.items():
        table = {L: {k: m[k][i] for k in ("accuracy", "auroc", "selectivity", "paired_accuracy") if k in m}
                 for i, L in enumerate(layers)}
        out[f"selected_layer_{p}"] = select_layer(table, n_model_layers)
    main = "mean_diff" if "mean_diff" in per_probe else next(iter(per_probe), None)
    out["selection_probe"] = main
    if main is not None:
        out["selected_layer"] = int(out[f"selected_layer_{main}"])
        i = layers.index(out["selected_layer"])
        out["selected"] = {p: {k: v[i] for k, v in m.items()} for p, m in per_probe.items()}
        sel = out["selected"][main]
        if "selectivity_lo" in sel:  # does the selected layer read more than the answer's words?
            out["beats_lexical"] = bool(np.isfinite(sel["selectivity_lo"]) and sel["selectivity_lo"] > 0)
    else:  # no probes evaluated: the middle of the eligible range
        out["selected_layer"] = int(layers[len(layers) // 2])
    return out


def _row_fields(cache: ActivationCache, rows: np.ndarray, examples, name: str) -> dict[str, list]:
    """Per cached row, the example fields the evaluation uses (answer text, pair, phrasing, question polarity)."""
    by_id = examples if isinstance(examples, dict) else {ex["id"]: ex for ex in examples}
    ids = cache.ids
    missing = [ids[i] for i in rows if ids[i] not in by_id]
    if missing:
        raise ProbeError(f"{cache.path}: the examples given for direction {name!r} lack {len(missing)} cached ids "
                         f"(e.g. {missing[:2]}); pass the examples that were cached")
    exs = [by_id[ids[i]] for i in rows]
    return {"texts": [answer_text(ex) for ex in exs], "pairs": [ex.get("pair_id") for ex in exs],
            "phrasings": [ex.get("phrasing") for ex in exs], "polarity": [ex.get("question_polarity") for ex in exs]}


def contrast_direction(cache: ActivationCache | str, name: str, positive: Any, negative: Any,
                       position: str = "response_mean", layers: Sequence[int] | None = None,
                       probes: Sequence[str] = ("mean_diff", "logistic"), label_field: str = "label",
                       group_field: str = "template_id", n_splits: int = 5, n_boot: int = 500, seed: int = 0,
                       site_kind: str = "resid_post", provenance: dict | None = None, *,
                       examples: Sequence[dict] | dict[str, dict] | None = None,
                       phrasing_splits: int = PHRASING_SPLITS,
                       remove: dict[str, Direction] | None = None, backend: str = "sklearn",
                       device: str | None = None, direction_source: str = "mean_diff") -> Direction:
    """The ``positive`` minus ``negative`` direction (by ``label_field``) at ``position``, per layer.

    ``direction_source``: what supplies ``raw`` at each layer (``probes.estimators.direction_from``): the
    class-mean difference (default), the logistic weights, or PCA of the paired differences (needs
    ``examples`` with ``pair_id``); the metrics (held-out accuracy etc.) are the probes' either way. The
    direction's provenance records the source.

    ``examples`` (the cached examples, matched by id) supply the answer text (lexical baseline and
    selectivity), ``pair_id`` (paired accuracy), ``phrasing`` (family x phrasing splits) and
    ``question_polarity`` (paired accuracy per polarity); without them only family CV runs.
    ``remove``: directions whose span (per layer, Gram-Schmidt) is projected out of this one.
    ``backend``/``device``: ``fit_layers``'s (``torch``: all layers at once).
    """
    cache = cache if isinstance(cache, ActivationCache) else ActivationCache(cache)
    labels = cache.column(label_field)
    rows = np.asarray([i for i, lab in enumerate(labels) if lab in (positive, negative)])
    present = sorted({str(lab) for lab in labels})
    for want in (positive, negative):
        if not any(lab == want for lab in labels):
            raise ProbeError(f"{cache.path}: no rows with {label_field}={want!r} for direction {name!r} "
                             f"(the cache's {label_field} values: {', '.join(present)}); cache examples of both "
                             "conditions")
    y = np.asarray([labels[i] == positive for i in rows], dtype=np.int64)
    gcol = cache.column(group_field)
    if any(gcol[i] is None for i in rows):
        raise ProbeError(f"{cache.path}: some rows have no {group_field!r}; held-out-family CV needs it on every row")
    groups = np.asarray([str(gcol[i]) for i in rows])
    layers = check_layers(cache, layers, site_kind)
    fields = _row_fields(cache, rows, examples, name) if examples is not None else {}
    design = make_design(y, groups, n_splits=n_splits, phrasing_splits=phrasing_splits, n_boot=n_boot, seed=seed,
                         **fields)
    basis = None
    if remove:
        for d in remove.values():
            d.validate_width(cache.d_model, f"cache {cache.path}")
        basis = lambda L: np.stack([d.raw[d.row(L)] for d in remove.values()])  # noqa: E731
    raw, norms, per_probe = fit_layers(lambda L: cache.load(f"{site_kind}.{L}", position, rows), design, layers,
                                       probes, n_boot, seed, desc=name, remove=basis, backend=backend,
                                       device=device)
    if direction_source not in DIRECTION_SOURCES:
        raise ProbeError(f"direction {name!r}: unknown direction source {direction_source!r}; choose one of "
                         f"{', '.join(DIRECTION_SOURCES)}")
    if direction_source != "mean_diff":
        pairs = fields.get("pairs")
        raw = np.stack([direction_from(direction_source, cache.load(f"{site_kind}.{L}", position, rows), y, pairs,
                                       groups, basis(L) if basis else None) for L in layers])
    prov = {"kind": "contrast", "direction_source": direction_source, "cache": str(cache.path), "model": cache.manifest.get("inputs", {}).get("model"),
            "cache_key": cache.manifest.get("key"), "label_field": label_field, "positive": positive,
            "negative": negative, "group_field": group_field, "n_positive": int(y.sum()),
            "n_negative": int((1 - y).sum()), "split": design.split["scheme"], **(provenance or {})}
    if remove:
        prov["removed"] = {n: {"kind": d.provenance.get("kind"), "positive": d.provenance.get("positive"),
                               "negative": d.provenance.get("negative"), "cache_key": d.provenance.get("cache_key")}
                           for n, d in remove.items()}
        prov["removal"] = ("per layer, the span of the removed directions' raw vectors (Gram-Schmidt) projected out "
                           "of the mean difference, in every training fold too")
    return Direction(name=name, layers=layers, raw=raw, resid_norm=norms, site_kind=site_kind, position=position,
                     provenance=prov, metrics=_metrics(layers, per_probe, _n_model_layers(cache), design))


def shift_direction(base_cache: ActivationCache | str, tuned_cache: ActivationCache | str, name: str,
                    position: str = "last_prompt", layers: Sequence[int] | None = None,
                    probes: Sequence[str] = ("mean_diff",), n_splits: int = 5, n_boot: int = 500, seed: int = 0,
                    site_kind: str = "resid_post", provenance: dict | None = None) -> Direction:
    """Mean (tuned - base) activation over the prompts both caches hold (matched by example id)."""
    base = base_cache if isinstance(base_cache, ActivationCache) else ActivationCache(base_cache)
    tuned = tuned_cache if isinstance(tuned_cache, ActivationCache) else ActivationCache(tuned_cache)
    if base.d_model != tuned.d_model:
        raise ProbeError(f"{base.path} has width {base.d_model} but {tuned.path} has width {tuned.d_model}; "
                         "a tune shift compares a model with its own base")
    t_row = {i: r for r, i in enumerate(tuned.ids)}
    pairs = [(r, t_row[i]) for r, i in enumerate(base.ids) if i in t_row]
    if len(pairs) < 4:
        raise ProbeError(f"{base.path} and {tuned.path} share {len(pairs)} example ids; cache the same prompts "
                         "through both models")
    b_rows = np.asarray([p[0] for p in pairs])
    t_rows = np.asarray([p[1] for p in pairs])
    layers = check_layers(base, layers, site_kind)
    check_layers(tuned, layers, site_kind)
    y = np.r_[np.zeros(len(pairs)), np.ones(len(pairs))].astype(np.int64)
    groups = np.r_[b_rows, b_rows].astype(str)
    design = make_design(y, groups, pairs=list(groups), n_splits=n_splits, n_boot=0)  # pair = the same prompt

    def load(L):
        s = f"{site_kind}.{L}"
        return np.concatenate([base.load(s, position, b_rows), tuned.load(s, position, t_rows)])

    raw, norms, per_probe = fit_layers(load, design, layers, probes, n_boot, seed, desc=name)
    prov = {"kind": "tune_shift", "base_cache": str(base.path), "tuned_cache": str(tuned.path),
            "base_model": base.manifest.get("inputs", {}).get("model"),
            "tuned_model": tuned.manifest.get("inputs", {}).get("model"),
            "adapter_sha256": tuned.manifest.get("inputs", {}).get("adapter_sha256"),
            "n_prompts": len(pairs), "group_field": "prompt id", **(provenance or {})}
    return Direction(name=name, layers=layers, raw=raw, resid_norm=norms, site_kind=site_kind, position=position,
                     provenance=prov, metrics=_metrics(layers, per_probe, _n_model_layers(base), design))
