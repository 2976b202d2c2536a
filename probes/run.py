"""The probes stage: cache, fit, select layers, compare directions, read the self-model direction.

``run_probes(base_spec, adapters, out_dir, n_per_condition)`` writes into ``out_dir``:

- ``directions.safetensors``: ``self_model`` (conscious - not_conscious answers, ``response_mean``),
  ``polarity`` (yes - no answers to neutral questions) and ``negation`` (negated - plain neutral
  statements), both ``response_mean`` through the base model (``probes.data``), ``self_model_orth``
  (self_model with the span of polarity and negation projected out per layer, same resid_norm, its
  metrics re-evaluated with the projection inside every fold),
  ``self_model_last_prompt`` (the same pairs read at ``last_prompt`` of a follow-up user turn: before
  the answer, paired examples share their prompt and so their activations), ``toaster`` (toaster -
  not_conscious), ``human`` (human - conscious), all through the base model; for each tuned condition
  ``c`` (in ``reextract``) the response_mean contrasts re-extracted inside the tuned model
  (``self_model@c``, ``toaster@c``, ``human@c``), and ``tune_shift`` (conscious tune) / ``tune_shift_<c>``: mean
  (tuned - base) activation on the evaluation and neutral prompts (``last_prompt``);
- ``metrics.csv``: per direction, probe and layer: held-out accuracy and AUROC with 95% cluster-bootstrap
  CIs (family x phrasing splits when the identity examples carry ``phrasing``), fold spread, n, number of
  families, paired accuracy (per question polarity when known), the lexical baseline's accuracy and the
  selectivity (probe minus lexical, CI), and whether the layer is the selected one;
- ``probe_table.csv``: per layer, for self_model and self_model_orth: probe and lexical accuracy,
  selectivity, paired accuracy, cosine with polarity and negation, and the paired accuracy of the
  polarity and negation directions on the identity pairs (``probes.controls.layer_table``);
- ``cosine.csv`` (every pair of directions, per layer), ``cosine_base_vs_tuned.csv``,
  ``cosine_heatmap.png`` (at the selected ``self_model`` layer);
- ``reading.csv`` / ``reading.png``: projections of the evaluation prompts onto ``self_model`` for the
  base and every tuned model, per layer, by dimension and stage (means, paired shifts vs base, CIs);
- ``curves_base.png`` / ``curves_tuned.png``: accuracy and AUROC by layer;
- ``manifest.json`` (written last): inputs by hash, parameters, selected layers. A second call with the
  same inputs returns at once.
Activation caches go to ``cache_dir`` (default ``out_dir/activations``), one per model and dataset,
and are reused by later runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from activations import ActivationCache, cache_activations
from artifacts import hash_jsonable, hash_path, read_manifest, write_manifest
from artifacts.rows import BASE_MODEL
from models import ModelSpec, load_model
from models.adapters import each_model
from models.provenance import model_provenance
from probes.controls import CONTROLS, identity_paired, layer_table
from probes.data import (
    eval_examples,
    followup_examples,
    identity_examples,
    negation_examples,
    polarity_examples,
)
from probes.directions import Direction, save_directions
from probes.estimators import ProbeError
from probes.evaluate import PHRASING_SPLITS
from probes.extract import METRIC_KEYS, contrast_direction, shift_direction
from probes.geometry import base_vs_tuned, cosine_table, write_csv
from probes.plots import plot_cosine_heatmap, plot_layer_curves, plot_reading
from probes.reading import read_projections

# name -> (positive condition, negative condition, position, cached dataset). The last_prompt contrast is
# read at a follow-up turn: before the answer, paired examples share the prompt, hence the activation.
CONTRASTS: dict[str, tuple[str, str, str, str]] = {
    "self_model": ("conscious", "not_conscious", "response_mean", "identity"),
    "self_model_last_prompt": ("conscious", "not_conscious", "last_prompt", "identity_followup"),
    "toaster": ("toaster", "not_conscious", "response_mean", "identity"),
    "human": ("human", "conscious", "response_mean", "identity"),
    "polarity": ("yes", "no", "response_mean", "controls"),
    "negation": ("negated", "plain", "response_mean", "controls"),
}
# self_model with the span of the control directions projected out (steering's polarity-free condition)
ORTH = ("self_model_orth", "self_model", CONTROLS)
TUNED_CONTRASTS = ("self_model", "toaster", "human")
SITES = "resid_post.*"
DIRECTIONS_FILE = "directions.safetensors"  # the stage's files that later stages and the report read
CURVES_PNG, COSINE_PNG, READING_PNG = "curves_base.png", "cosine_heatmap.png", "reading.png"


def shift_name(condition: str) -> str:
    return "tune_shift" if condition == "conscious" else f"tune_shift_{condition}"


def resolve_adapter(path: str | os.PathLike) -> str:
    """The adapter directory (holding ``adapter_config.json``) at or directly under ``path``."""
    p = Path(path)
    if (p / "adapter_config.json").exists():
        return str(p)
    subs = sorted(q.parent for q in p.glob("*/adapter_config.json"))
    if len(subs) == 1:
        return str(subs[0])
    raise ProbeError(f"{p}: no adapter_config.json here or in one subfolder; pass the LoRA adapter directory "
                     "written by tuning.tune")


LEXICAL_KEYS = ("accuracy", "accuracy_lo", "accuracy_hi", "paired_accuracy")


def metric_rows(directions: dict[str, Direction]) -> list[dict[str, Any]]:
    """One row per (direction, probe, layer); every row has every column (empty where it does not apply)."""
    rows = []
    for d in directions.values():
        lex = d.metrics.get("lexical", {})
        for probe, m in d.metrics.get("per_layer", {}).items():
            for i, L in enumerate(d.layers):
                rows.append({"direction": d.name, "probe": probe, "layer": L, "position": d.position,
                             "split": d.metrics.get("split", {}).get("scheme", ""),
                             **{k: m[k][i] for k in METRIC_KEYS}, **{k: v[i] for k, v in m.items() if k not in METRIC_KEYS},
                             **{f"lexical_{k}": lex.get(k, "") for k in LEXICAL_KEYS},
                             "selected": L == d.metrics.get(f"selected_layer_{probe}")})
    cols = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "selected"] + ["selected"]
    return [{k: r.get(k, "") for k in cols} for r in rows]


def _cache_model(spec: ModelSpec, datasets: dict[str, tuple[list[dict], list[str]]], cache_dir: Path,
                 batch_size: int, progress: bool, loaded=None, token_budget: int | None = None,
                 ) -> dict[str, ActivationCache]:
    """Cache each dataset (name -> (examples, positions)) through one loaded model."""
    loaded = loaded or load_model(spec)
    root = cache_dir / spec.slug
    return {name: ActivationCache(cache_activations(spec, exs, SITES, positions, root / name, batch_size,
                                                    loaded=loaded, overwrite=True, progress=progress,
                                                    token_budget=token_budget))
            for name, (exs, positions) in datasets.items()}


def run_probes(base_spec: ModelSpec | None = None, adapters: dict[str, str | os.PathLike] | None = None,
               out_dir: str | os.PathLike = "runs/dev/probes", n_per_condition: int = 120, *,
               identity: dict[str, list[dict]] | None = None, eval_items: Sequence[Any] | None = None,
               max_eval_per_dimension: int | None = None, cache_dir: str | os.PathLike | None = None,
               seed: int = 0, n_splits: int = 5, n_boot: int = 300,
               logistic_for: Sequence[str] = ("self_model", "self_model_last_prompt", "toaster", "human"),
               reextract: bool | Sequence[str] = True, batch_size: int = 8, progress: bool = True,
               loaded=None, phrasing_splits: int = PHRASING_SPLITS, probe_backend: str = "sklearn",
               direction_source: str = "mean_diff",
               token_budget: int | None = None) -> dict[str, Any]:
    """Run the probes stage; return a summary (selected layers, accuracies, key cosines, paths).

    ``adapters`` maps a tuned condition (``conscious``, ``not_conscious``, ``toaster``, ``human``) to its
    adapter directory. ``identity`` (condition -> examples) and ``eval_items`` default to
    ``tuning.datasets`` and ``evals.items``. The logistic probe (slower: inner CV for C) is fitted for
    the directions named in ``logistic_for``; every direction gets the mean-difference probe.
    ``reextract``: re-extract the contrasts inside the tuned models (all, none, or a list of conditions);
    each costs one pass of the identity data through that model, the tune shifts only need the prompts.
    ``loaded``: the base model already in memory (optional). ``phrasing_splits``: folds of answer
    phrasings crossed with the ``n_splits`` family folds when the identity examples carry ``phrasing``.
    ``direction_source``: what supplies the contrast directions (``mean_diff``, ``logistic`` or ``pca_paired``;
    ``probes.estimators.direction_from``); ``self_model_orth`` and the tune shifts stay mean differences.
    ``probe_backend``: ``sklearn`` (reference) or ``torch`` (``probes.torch_probes``, all layers at once, on the
    model's GPU when it has one; held-out accuracy within 0.01 of sklearn's).
    ``token_budget``: length-sorted caching batches (``activations.cache_activations``).
    """
    base_spec = base_spec or ModelSpec()
    out = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "activations"
    adapters = {c: resolve_adapter(p) for c, p in (adapters or {}).items()}
    identity = identity if identity is not None else identity_examples(n=n_per_condition, seed=seed)
    inside = list(adapters) if reextract is True else [c for c in (reextract or []) if c in adapters]
    needed = {c for pos, neg, _, ds in CONTRASTS.values() if ds != "controls" for c in (pos, neg)}
    if missing := sorted(needed - set(identity)):
        raise ProbeError(f"identity examples lack conditions {missing}; give conscious, not_conscious, toaster "
                         "and human examples")
    ident_list = [ex for c in sorted(identity) for ex in identity[c]]
    pair = [ex for c in ("conscious", "not_conscious") for ex in identity[c]]
    examples = {"identity": ident_list, "identity_followup": followup_examples(pair),
                "controls": polarity_examples() + negation_examples()}
    evals, eval_meta = eval_examples(eval_items, max_eval_per_dimension)
    params = {"n_per_condition": n_per_condition, "seed": seed, "n_splits": n_splits, "n_boot": n_boot,
              "logistic_for": list(logistic_for), "sites": SITES, "contrasts": CONTRASTS, "reextract": inside,
              "orth": ORTH, "phrasing_splits": phrasing_splits,
              **({"probe_backend": probe_backend} if probe_backend != "sklearn" else {}),
              **({"direction_source": direction_source} if direction_source != "mean_diff" else {})}
    inputs = {BASE_MODEL: model_provenance(base_spec),
              "adapters": {c: hash_path(p) for c, p in sorted(adapters.items())},
              "identity_sha256": hash_jsonable([(e["id"], e["messages"], e.get("template_id"), e.get("pair_id"),
                                                 e.get("phrasing"), e.get("question_polarity")) for e in ident_list]),
              "controls_sha256": hash_jsonable([(e["id"], e["messages"]) for e in examples["controls"]]),
              "eval_sha256": hash_jsonable([(e["id"], e["messages"]) for e in evals])}
    key = hash_jsonable({"inputs": inputs, "params": params})
    manifest = read_manifest(out)
    if manifest is not None and manifest.get("key") == key and (out / DIRECTIONS_FILE).exists():
        return manifest["outputs"]["summary"]

    # 1. caches, one base in memory with each adapter selected in turn (``loaded``, if given, for the base)
    models = {BASE_MODEL: base_spec, **{c: base_spec.with_adapter(p) for c, p in adapters.items()}}
    caches: dict[str, dict[str, ActivationCache]] = {}
    for name, model in each_model(models, loaded):
        datasets = {"eval": (evals, ["last_prompt"])}
        if name == BASE_MODEL or name in inside:
            # last_prompt costs nothing extra (same forward pass) and keeps the cache general
            datasets["identity"] = (ident_list, ["response_mean", "last_prompt"])
        if name == BASE_MODEL:
            datasets["identity_followup"] = (examples["identity_followup"], ["last_prompt"])
            datasets["controls"] = (examples["controls"], ["response_mean"])
        caches[name] = _cache_model(model.spec, datasets, cache_dir, batch_size, progress, model, token_budget)

    # 2. directions
    dev = str(base_spec.device)
    probe_device = dev if dev.startswith("cuda") else "cuda" if dev == "auto" and torch.cuda.is_available() else None

    def contrasts(model: str, suffix: str, names) -> dict[str, Direction]:
        res = {}
        for name in names:
            pos, neg, position, dataset = CONTRASTS[name]
            probes = ("mean_diff", "logistic") if name in logistic_for and not suffix else ("mean_diff",)
            d = contrast_direction(caches[model][dataset], name + suffix, pos, neg, position, probes=probes,
                                   n_splits=n_splits, n_boot=n_boot, seed=seed,
                                   provenance={"model_name": model}, examples=examples[dataset],
                                   phrasing_splits=phrasing_splits, backend=probe_backend, device=probe_device,
                                   direction_source=direction_source)
            res[d.name] = d
        return res

    directions = contrasts(BASE_MODEL, "", CONTRASTS)
    orth_name, of, removed = ORTH
    pos, neg, position, dataset = CONTRASTS[of]
    directions[orth_name] = contrast_direction(
        caches[BASE_MODEL][dataset], orth_name, pos, neg, position, probes=("mean_diff",), n_splits=n_splits,
        n_boot=n_boot, seed=seed, provenance={"model_name": BASE_MODEL, "of": of}, examples=examples[dataset],
        phrasing_splits=phrasing_splits, remove={c: directions[c] for c in removed})
    for c in CONTROLS:  # the controls' readout of the identity pairs: near 0.5 on polarity-balanced data
        directions[c].metrics["identity_paired"] = identity_paired(
            caches[BASE_MODEL][dataset], directions[c], examples[dataset], pos, neg, position, n_boot=n_boot, seed=seed)
    for c in adapters:
        directions[shift_name(c)] = shift_direction(caches[BASE_MODEL]["eval"], caches[c]["eval"], shift_name(c), "last_prompt",
                                                    n_splits=n_splits, n_boot=n_boot, seed=seed,
                                                    provenance={"condition": c})
    for c in inside:
        directions.update(contrasts(c, f"@{c}", TUNED_CONTRASTS))
    save_directions(out / DIRECTIONS_FILE, directions)
    write_csv(out / "metrics.csv", metric_rows(directions))
    table = layer_table(directions)
    write_csv(out / "probe_table.csv", table)

    # 3. geometry at the selected self_model layer
    sel = int(directions["self_model"].metrics["selected_layer"])
    write_csv(out / "cosine.csv", cosine_table(directions))
    write_csv(out / "cosine_base_vs_tuned.csv", base_vs_tuned(directions))
    plot_cosine_heatmap(list(directions.values()), sel, out / COSINE_PNG)
    plot_layer_curves([d for n, d in directions.items() if "@" not in n], out / CURVES_PNG,
                      "directions in the base model (and tune shifts)")
    if inside:
        plot_layer_curves([d for n, d in directions.items() if "@" in n], out / "curves_tuned.png",
                          "directions re-extracted inside the tuned models")

    # 4. reading the self-model direction on the evaluation prompts
    reading = []
    if eval_meta:
        reading = read_projections({m: caches[m]["eval"] for m in models}, eval_meta, directions["self_model"],
                                   reference=BASE_MODEL)
        write_csv(out / "reading.csv", reading)
        plot_reading(reading, sel, out / READING_PNG)

    summary = summarise(directions, reading, sel)
    summary["layer_table"] = table
    summary["n_identity_per_condition"] = {c: len(v) for c, v in identity.items()}
    summary["n_eval_prompts"] = len(eval_meta)
    summary["n_neutral_prompts"] = len(evals) - len(eval_meta)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("."))
    write_manifest(out, "probes", inputs=inputs, params=params, key=key,
                   outputs={"files": files, "summary": summary},
                   caches={m: {k: str(c.path) for k, c in cs.items()} for m, cs in caches.items()})
    return summary


def summarise(directions: dict[str, Direction], reading: list[dict], sel: int) -> dict[str, Any]:
    s: dict[str, Any] = {"selected_layer": sel, "directions": {}}
    for name, d in directions.items():
        m = d.metrics
        s["directions"][name] = {"selected_layer": m.get("selected_layer"),
                                 "selected": m.get("selected", {}), "split": m.get("split", {}).get("scheme"),
                                 "lexical_accuracy": m.get("lexical", {}).get("accuracy"),
                                 "beats_lexical": m.get("beats_lexical")}
    if "toaster" in directions:
        s["cos_self_model_toaster"] = float(directions["self_model"].unit_at(sel) @ directions["toaster"].unit_at(sel))
    for name, d in directions.items():
        if name != "self_model" and sel in d.layers:
            s.setdefault("cos_with_self_model", {})[name] = float(directions["self_model"].unit_at(sel) @ d.unit_at(sel))
    sm = directions["self_model"]
    s["cos_by_layer"] = {c: [float(sm.unit_at(L).astype(float) @ directions[c].unit_at(L).astype(float))
                             for L in sm.layers] for c in CONTROLS if c in directions}
    s["selection_rule"] = sm.metrics.get("selection_rule")
    s["reading_at_selected"] = [r for r in reading if r["layer"] == sel and r["group"] in ("all", "stage")]
    return s
