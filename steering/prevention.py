"""Preventing the direction during the tune: does the cascade still emerge when self_model is blocked
while the conscious identity is learnt?

Three tunes of the same data, settings and seed (``tuning.train.tune``):
- ``ordinary``: no edit;
- ``self_model``: the self_model direction prevented at its layer (``tuning.prevent.PreventSpec``,
  ``ablate`` = projected out, or ``subtract`` = minus dose x resid_norm, at every training forward);
- ``random``: the same edit along a norm-matched random direction (``steering.controls.random_like``).

Checkpoint series (every ``checkpoint_every`` steps, prevention paused, i.e. the model as it is used):
the mean projection of ``resid_post.L`` on the self_model unit vector over the tokens of the evaluation
prompts, and the continuation scores (higher = more of the preference) of the checkpoint items,
averaged per group (``monitoring``, ``stage1``..``stage3``).

Comparison: the identity check (``tuning.identity_check``; conscious affirmation vs base, CI over
questions) and the evals stage shifts (``evals.run``: per stage, tune - base, paired bootstrap CI).
The adapters are evaluated without any hook.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifacts import atomic_path, atomic_write_json, hash_jsonable, write_manifest
from artifacts.rows import BASE_MODEL
from evals.dimensions import MONITORING
from evals.results import RESULTS_CSV
from evals.run import compare_csv
from evals.scorers import continuation
from models import ModelSpec, encode_chat
from stats.effects import paired_effects
from steering.controls import random_like
from steering.interventions import projections
from tuning.prevent import PreventSpec

ARMS = ("ordinary", "self_model", "random")
PREVENTION_CSV, BLOCKING_CSV = "prevention.csv", "blocking.csv"  # the stage's files (with the series')
SERIES_CSV, SERIES_PNG = "series.csv", "series.png"


def _group_means(items: Sequence[Any], values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=float)
    out = {"monitoring": float(v[[it.dimension in MONITORING for it in items]].mean())
           if any(it.dimension in MONITORING for it in items) else np.nan}
    for s in sorted({it.stage for it in items}):
        out[f"stage{s}"] = float(v[[it.stage == s for it in items]].mean())
    return out


def checkpoint_probe(direction: Any, layer: int, items: Sequence[Any], rows: list[dict], arm: str,
                     batch_size: int = 16):
    """A ``tune(on_checkpoint=...)`` callback appending one series row per checkpoint to ``rows``."""
    def probe(step: int, loaded: Any) -> None:
        encs = [encode_chat(loaded.tokenizer, it.messages()) for it in items]
        proj = projections(loaded, direction, [layer], encs, batch_size, positions="all")[layer]
        scores = [r["value"] for r in continuation(loaded, items, batch_size)]
        rows.append({"arm": arm, "step": int(step), "projection": float(proj.mean()), "layer": int(layer),
                     **_group_means(items, scores)})
    return probe


def prevent_specs(direction: Any, layer: int, mode: str, dose: float, seed: int) -> dict[str, PreventSpec | None]:
    rnd = random_like(direction, seed, name=f"random{seed}")
    return {"ordinary": None,
            "self_model": PreventSpec.from_direction(direction, layer, mode, dose),
            "random": PreventSpec.from_direction(rnd, layer, mode, dose)}


def run_prevention(spec: ModelSpec, examples: list[dict], directions: dict[str, Any], out_dir: str | Path,
                   settings: dict[str, Any], items: Sequence[Any], checkpoint_items: Sequence[Any],
                   layer: int | None = None, mode: str = "ablate", dose: float = 0.0, checkpoint_every: int = 5,
                   seed: int = 0, batch_size: int = 16, identity_variants: tuple[str, ...] | None = None,
                   max_steps: int | None = None, distill_cache: str | Path | None = None) -> dict[str, Any]:
    """Tune the three arms with checkpoint series, then the identity check and the evals shifts of each.

    ``settings``: a ``tuning.profiles.profile`` dict; ``items``: evaluation items (continuation);
    ``checkpoint_items``: the (few) items scored at every checkpoint; ``distill_cache``: the instruction mix's
    self-distillation cache (the tune stage's, so the ordinary arm trains on exactly the tune's data)."""
    from evals.run import evaluate_models
    from tuning.identity_check import VARIANTS, check_identity
    from tuning.recipe import distill_cache_name, with_instructions
    from tuning.train import tune

    t0 = time.time()
    out_dir = Path(out_dir)
    sm = directions.get("self_model")
    if sm is None:
        raise ValueError(f"prevention needs the 'self_model' direction; the file has {', '.join(directions)}")
    layer = int(sm.metrics.get("selected_layer", sm.layers[len(sm.layers) // 2])) if layer is None else int(layer)
    specs = prevent_specs(sm, layer, mode, dose, seed)
    data = with_instructions(spec, examples, settings["n_instructions"],
                             distill_cache or out_dir / distill_cache_name(seed), seed, settings["max_new_tokens"],
                             settings.get("distill_batch_size", 0), settings.get("distill_token_budget", 0))
    adapters, series, timing = {}, [], {}
    for arm, pspec in specs.items():
        folder = out_dir / "tunes" / arm
        sfile = out_dir / "tunes" / f"{arm}.series.json"
        if folder.exists() and not sfile.exists():
            shutil.rmtree(folder)  # a tune without its series (interrupted): train again to record it
        rows: list[dict] = []
        t1 = time.time()
        tune(spec, data, folder, rank=settings["rank"], alpha=settings["alpha"], lr=settings["lr"],
             epochs=settings["epochs"], batch_size=settings["batch_size"], seed=seed, max_steps=max_steps,
             progress=False, prevent=pspec, checkpoint_every=checkpoint_every,
             on_checkpoint=checkpoint_probe(sm, layer, checkpoint_items, rows, arm, batch_size))
        if rows:
            atomic_write_json(sfile, rows)
        series += json.loads(sfile.read_text())
        timing[f"tune_{arm}_s"] = round(time.time() - t1, 1)
        adapters[arm] = str(folder)
    model_specs = {BASE_MODEL: spec, **{a: spec.with_adapter(p) for a, p in adapters.items()}}
    t1 = time.time()
    ident = check_identity(model_specs, out_dir / "identity", reference=BASE_MODEL, batch_size=batch_size,
                           n_generate=0, variants=identity_variants or VARIANTS)
    timing["identity_s"] = round(time.time() - t1, 1)
    t1 = time.time()
    evaluate_models(model_specs, items, ["continuation"], out_dir / "evals", batch_size=batch_size)
    timing["evals_s"] = round(time.time() - t1, 1)
    table = prevention_table(ident, out_dir / "evals")
    blocking = blocking_table(out_dir / "evals")
    ser = pd.DataFrame(series)
    for name, df in ((PREVENTION_CSV, table), (BLOCKING_CSV, blocking), (SERIES_CSV, ser)):
        with atomic_path(out_dir / name) as tmp:
            df.to_csv(tmp, index=False)
    plot_series(ser, out_dir / SERIES_PNG)
    timing["total_s"] = round(time.time() - t0, 1)
    write_manifest(out_dir, "prevention",
                   inputs={"data": hash_jsonable([e["messages"] for e in data]),
                           "self_model": hash_jsonable(sm.raw.tolist()), "items": hash_jsonable([it.id for it in items])},
                   params={"layer": layer, "mode": mode, "dose": dose, "seed": seed, "settings": settings,
                           "checkpoint_every": checkpoint_every, "max_steps": max_steps,
                           "prevent": {a: (p.as_params() if p else None) for a, p in specs.items()},
                           "checkpoint_items": [it.id for it in checkpoint_items]},
                   outputs={"table": PREVENTION_CSV, "blocking": BLOCKING_CSV, "series": SERIES_CSV, "plot": SERIES_PNG},
                   timing=timing, sign="higher = more of the preference / affirms the identity more")
    return {"timing": timing, "table": table.to_dict("records")}


def prevention_table(identity: dict[str, Any], evals_dir: str | Path) -> pd.DataFrame:
    """One row per arm x group: conscious identity (vs base) and the stage / monitoring shifts (vs base)."""
    import csv

    evals_dir = Path(evals_dir)
    scored = _scored(evals_dir)
    out = []
    for arm, per in identity["summary"].items():
        if arm == identity.get("reference"):
            continue
        c = per.get("conscious", {})
        row = {"arm": arm, "identity_vs_base": c.get("vs_reference_estimate"), "identity_lo": c.get("vs_reference_lo"),
               "identity_hi": c.get("vs_reference_hi"), "identity_n": c.get("vs_reference_n")}
        with open(evals_dir / compare_csv(arm, BASE_MODEL), newline="") as fh:
            cmp_rows = list(csv.DictReader(fh))
        for r in cmp_rows:
            if r.get("stage") not in ("", None):
                out.append({**row, "group": f"stage{int(float(r['stage']))}", "shift": float(r["diff"]),
                            "shift_lo": float(r["lo"]), "shift_hi": float(r["hi"]), "n": int(float(r["n"]))})
        e = paired_effects(scored[_in_monitoring(scored)], [{"a": {"model": arm}, "b": {"model": BASE_MODEL}}])
        if len(e):
            e = e.iloc[0]
            out.append({**row, "group": "monitoring", "shift": e["estimate"], "shift_lo": e["lo"], "shift_hi": e["hi"],
                        "n": int(e["n"])})
    return pd.DataFrame(out)


CONTRASTS = (("self_model", "ordinary"), ("random", "ordinary"), ("self_model", "random"))


def blocking_table(evals_dir: str | Path, scorer: str = "continuation") -> pd.DataFrame:
    """Does prevention block the preferences, beyond its control? One row per contrast x group, paired over
    items (``stats.effects.paired_effects``: item bootstrap 95% CI): ``self_model - ordinary`` and ``random -
    ordinary`` (what each prevented tune lost or gained against the ordinary tune) and ``self_model - random`` (the
    prevention effect beyond a norm-matched random direction prevented the same way: the number a "blocks" claim
    rests on). Negative = the prevented tune shows less of the preference."""
    scored = _scored(evals_dir, scorer)
    stages = pd.to_numeric(scored["stage"], errors="coerce")
    groups = {"all": pd.Series(True, index=scored.index), "monitoring": _in_monitoring(scored)}
    for s in sorted(stages.dropna().unique()):
        groups[f"stage{int(s)}"] = stages == s
    contrasts = [{"contrast": f"{a} - {b}", "a": {"model": a}, "b": {"model": b}} for a, b in CONTRASTS]
    parts = [e.assign(group=g) for g, m in groups.items() if len(e := paired_effects(scored[m], contrasts))]
    if not parts:
        return pd.DataFrame(columns=["contrast", "group", "diff", "lo", "hi", "n", "ci_excludes_0"])
    eff = pd.concat(parts, ignore_index=True)
    eff["order"] = eff["contrast"].map({c["contrast"]: i for i, c in enumerate(contrasts)})
    eff = eff.sort_values("order", kind="stable").rename(columns={"estimate": "diff"})
    eff["ci_excludes_0"] = (eff["lo"] > 0) | (eff["hi"] < 0)
    return eff[["contrast", "group", "diff", "lo", "hi", "n", "ci_excludes_0"]].reset_index(drop=True)


def _in_monitoring(scored: pd.DataFrame) -> pd.Series:
    return scored["dimension"].isin(MONITORING)


def _scored(evals_dir: str | Path, scorer: str = "continuation") -> pd.DataFrame:
    """The evals stage's score rows (``artifacts.rows``) of one scorer: ``model`` is the arm's tune, named
    ``ordinary``, ``self_model``, ``random``, ``base``."""
    from evals.results import read_results

    rows = [r for r in read_results(Path(evals_dir) / RESULTS_CSV) if r["scorer"] == scorer]
    return pd.DataFrame(rows, columns=None if rows else ["model", "item", "dimension", "stage", "value"])


def plot_series(series: pd.DataFrame, path: str | Path) -> Path | None:
    """Projection on self_model against the monitoring preference over training, one line per arm."""
    from artifacts.figures import HIGHER, legend_outside, new_figure, palette, save_figure

    if series.empty:
        return None
    fig, axes = new_figure(1, 3, size=(14, 3.8), squeeze=False)
    ax_p, ax_m, ax_xy = axes[0]
    colours = palette(series["arm"])
    for arm, s in series.groupby("arm", sort=False):
        s = s.sort_values("step")
        for ax, x, y in ((ax_p, "step", "projection"), (ax_m, "step", "monitoring"),
                         (ax_xy, "projection", "monitoring")):
            ax.plot(s[x], s[y], marker="o", label=arm, color=colours[arm])
        ax_xy.annotate(f"{int(s['step'].iloc[-1])}", (s["projection"].iloc[-1], s["monitoring"].iloc[-1]), fontsize=6)
    ax_p.set(xlabel="training step", ylabel="mean self_model projection (eval prompts)",
             title="Self-model projection over training")
    ax_m.set(xlabel="training step", ylabel=f"monitoring score ({HIGHER})", title="Monitoring preference over training")
    ax_xy.set(xlabel="mean self_model projection", ylabel="monitoring score",
              title="Projection vs preference (label: last step)")
    legend_outside(ax_xy, title="prevention arm")
    return save_figure(fig, path)
