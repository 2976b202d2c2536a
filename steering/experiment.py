"""Steering and ablation experiments: library entry points the pipeline calls.

- ``run_steering(loaded, directions, out_dir, ...)``: on the base model, add each condition's direction
  (self_model, toaster, human, n norm-matched random controls, -self_model, and the polarity controls
  ``polarity`` and ``self_model_orth`` at exactly self_model's norm) at every dose at the selected layer,
  plus a layer sweep at a fixed dose, and score every item of every dimension with both readouts
  (``continuation``, vector at prompt positions only by default, and the counterbalanced ``choice``; the
  layer sweep is read with ``continuation`` only: on SmolLM2 the choice readout costs ~1.3x per arm).
  Then it calibrates the decision rule at the verdict dose (``steering.calibration``: null false-positive
  rate over >= 20 random directions, planted sensitivity). Polarity controls missing from the direction
  file are skipped with a note in the report.
- ``run_ablation(base_loaded, tuned_loaded, directions, out_dir, ...)``: on the tuned model, project
  out ``self_model`` (and, as controls, ``toaster`` and random directions) at every layer, and clamp
  it to the base model's mean projection; the base model unsteered is the reference.

Both score every arm of an item in the same batched forward passes (``steering.scoring``), write one
JSONL row per scored item x arm x readout (resumable chunks, one per item), run the coherence guard, and
write ``results.jsonl``, ``coherence.csv``, ``effects.csv``, ``verdict.csv``, ``steering.md``,
``calibration.csv``/``calibration.json`` (steering), dose-response PNGs and ``manifest.json``.

Scoring profiles (``ScoringProfile``; not the tuning profiles of ``tuning.profiles``): ``full`` scores every
pair/action item; ``fast`` (the demo) scores 4 items per monitoring
dimension under every condition at every dose (6 doses incl. 0, 5 random seeds, plus a 4-layer sweep)
and 1 item per other dimension at one dose (``FAST_OTHER_DOSE``) under every condition.

Doses are multiples of the mean residual norm at the layer (``Direction.resid_norm``). On the embedded
SmolLM2-135M at its selected layer 15 (resid norm ~132, self_model raw norm ~25, i.e. 0.19 x) the
coherence guard measured: perplexity on neutral text x1.03 / x1.13 / x1.71 at doses 0.125 / 0.25 / 0.5
and x19 at 1.0 (generations loop: "I of of of ..."); a norm-matched random direction reached x2.0 at
0.5. Hence the default doses 0, 1/16, 1/8, 1/4, 1/2, 1: the last one is expected to be flagged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from artifacts import atomic_path, atomic_write_json, hash_jsonable, write_manifest
from artifacts.presets import preset
from artifacts.rows import BASE_MODEL, normalise_all, score_row
from artifacts.store import ResultStore
from evals.dimensions import DIMENSIONS, MONITORING
from evals.items import load_items
from models.provenance import content_params
from probes.directions import Direction
from steering.arms import Arm, ablation_arms, arm_edits, condition_directions, steering_arms, subset_edits
from steering.coherence import RULE as COHERENCE_RULE
from steering.coherence import coherence_guard
from steering.interventions import mean_projection
from steering.reports import CALIBRATION_CSV, RESULTS_JSONL
from steering.scoring import (
    DEFAULT_POSITIONS,
    READOUTS,
    SIGN,
    STEER_POSITIONS,
    pair_encodings,
    score_choice,
    score_continuation,
    score_with_evals,
)

DEFAULT_CONDITIONS = ("none", "self_model", "toaster", "human", "random", "-self_model", "polarity",
                      "self_model_orth")
OPTIONAL_CONDITIONS = ("polarity", "negation", "self_model_orth")  # skipped with a note when the file lacks them
MAX_PLANTED_ITEMS = 16  # held-out monitoring items for the planted mean-difference direction
MAX_GRADIENT_ITEMS = 8  # ... and for the planted gradient directions (a forward + backward per answer)
DEFAULT_DOSES = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0)  # x mean residual norm; SmolLM2 breaks near 1 at layer 15
FAST_OTHER_DOSE = 0.25
ITEMS_PER_PASS = 16  # under a token budget: items whose item x arm rows are packed together (and written together)


@dataclass
class ScoringProfile:
    """How much the steering and ablation experiments score (``[steering] profile``). ``None`` = everything.
    Not the tuning profile (``tuning.profiles``, the training recipe); both are named presets looked up by
    ``artifacts.presets.preset``."""

    name: str = "full"
    items_per_dim: int | None = None  # pair/action items per non-monitoring dimension
    monitoring_items: int | None = None  # items per monitoring dimension
    doses: tuple[float, ...] = DEFAULT_DOSES  # monitoring dimensions (and all, in the full profile)
    other_doses: tuple[float, ...] | None = None  # other dimensions (None: same as doses)
    n_random: int = 5
    sweep_layers: int = 6  # layers in the layer sweep (evenly spaced), 0 = none
    gen_prompts: int = 4
    n_paragraphs: int | None = None  # neutral paragraphs for the perplexity guard (None: all)
    max_new_tokens: int = 24
    batch_size: int = 32
    token_budget: int | None = None  # None: one item per pass, rows in input order; N: see ``score_items``
    items_per_pass: int = ITEMS_PER_PASS  # items sharing forward passes under a token budget
    ablation_items_per_dim: int | None = None
    ablation_monitoring_items: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SCORING_PROFILES = {
    "full": ScoringProfile(),
    "fast": ScoringProfile(name="fast", items_per_dim=1, monitoring_items=4, doses=DEFAULT_DOSES,
                           other_doses=(0.0, FAST_OTHER_DOSE), n_random=5, sweep_layers=4, gen_prompts=3,
                           max_new_tokens=16, n_paragraphs=4, ablation_items_per_dim=1, ablation_monitoring_items=4),
}


def get_profile(profile: str | ScoringProfile, **overrides: Any) -> ScoringProfile:
    """The scoring profile ``profile`` (a name in ``SCORING_PROFILES``, or one itself) with non-None overrides."""
    return preset(SCORING_PROFILES, profile, "steering scoring ([steering] profile)", **overrides)


def select_items(dimensions: Sequence[str] | None, per_dim: int | None, monitoring: int | None,
                 items: Sequence[Any] | None = None, scorer: str = "continuation") -> list[Any]:
    """Items the scorer applies to (pair/action; open for ``judged``), the first ``per_dim``
    (``monitoring`` for the monitoring dimensions) of each dimension."""
    from evals.scorers import KINDS

    kinds = KINDS[scorer]
    pool = list(items) if items is not None else load_items(dimensions=list(dimensions) if dimensions else None,
                                                            kinds=list(kinds))
    dims = list(dimensions) if dimensions else list(DIMENSIONS)
    out = []
    for d in dims:
        mine = [it for it in pool if it.dimension == d and it.kind in kinds]
        k = monitoring if d in MONITORING else per_dim
        out += mine if k is None else mine[:k]
    return out


def default_layer(directions: dict[str, Direction], target: str, n_layers: int) -> int:
    d = directions.get(target) or next(iter(directions.values()))
    sel = d.metrics.get("selected_layer")
    if sel is not None and int(sel) in d.layers:
        return int(sel)
    mid = n_layers // 2
    return min(d.layers, key=lambda L: abs(L - mid))


def sweep_layers_for(direction: Direction, k: int, layer: int) -> list[int]:
    if k <= 0:
        return []
    L = sorted(direction.layers)
    idx = sorted({round(i * (len(L) - 1) / max(1, k - 1)) for i in range(k)})
    return sorted({L[i] for i in idx} | {layer})


def _item_rows(item: Any, arms: Sequence[Arm], res: dict, i: int, base: dict) -> list[dict]:
    """One score row (``artifacts.rows``) per arm: ``arm`` = the arm's condition, ``value`` = its score; the
    rest of ``base`` (experiment, positions), the item's kind, the arm's family / op / sweep, the readout's
    details (``lp_pref``, ...) and the sign are extras."""
    extra = [k for k in res if k != "score"]
    ctx = {k: v for k, v in base.items() if k not in ("model", "scorer")}
    return [score_row(base["model"], a.condition, a.dose, a.layer, item.id, item.dimension, item.stage,
                      base["scorer"], float(res["score"][i, k]), **ctx, kind=item.kind, family=a.family, op=a.op,
                      sweep=a.sweep, **{e: float(res[e][i, k]) for e in extra}, sign=SIGN)
            for k, a in enumerate(arms)]


def _score_many(loaded: Any, group: Sequence[Any], arms: Sequence[Arm], edits: dict, readout: str,
                batch_size: int, positions: str, judge: Any, token_budget: int | None) -> dict:
    if readout == "continuation":
        return score_continuation(loaded, group, arms, edits, batch_size, positions,
                                  encodings=pair_encodings(loaded, group), token_budget=token_budget)
    if readout == "choice":
        return score_choice(loaded, group, arms, edits, batch_size, token_budget=token_budget)
    return score_with_evals(loaded, group, arms, edits, readout, batch_size, judge=judge)


def _passes(items: Sequence[Any], arms_for: Any, per_pass: int) -> list[list[Any]]:
    """Consecutive runs of at most ``per_pass`` items that share one arm list."""
    out: list[list[Any]] = []
    for it in items:
        if out and len(out[-1]) < per_pass and arms_for(out[-1][0]) is arms_for(it):
            out[-1].append(it)
        else:
            out.append([it])
    return out


def score_items(loaded: Any, items: Sequence[Any], arms_for: Any, edits_for: Any, store: ResultStore,
                base: dict, batch_size: int, positions: str, desc: str, judge: Any = None,
                readouts: Sequence[str] | None = None, token_budget: int | None = None,
                items_per_pass: int = ITEMS_PER_PASS, unit: str = "") -> None:
    """Score each item under its arms (``arms_for(item)``) with each readout (default: ``base['scorer']``),
    one resumable chunk per item (named ``unit`` + the item's id); rows (``artifacts.rows``) name the scored
    model in ``base['model']`` and their readout in ``scorer``.

    Without ``token_budget`` every item is scored alone, its arms' rows batched in input order (``batch_size``
    rows a pass). With it, up to ``items_per_pass`` consecutive items sharing an arm list are scored together:
    their item x arm x answer rows are length-sorted and packed into passes of at most ``batch_size`` rows and
    ``token_budget`` padded tokens, each row with its own arm's edit (``Intervention.before_batch(rows)``);
    results come back in input order and each item's chunk is written when its group is done."""
    todo = [it for it in items if not store.done(f"{unit}{it.id}")]
    names = list(readouts) if readouts else [base.get("scorer", "continuation")]
    bar = tqdm(total=len(todo), desc=desc, unit="item")
    for group in _passes(todo, arms_for, 1 if token_budget is None else max(1, int(items_per_pass))):
        arms, edits = arms_for(group[0]), edits_for(group[0])
        rows: list[list[dict]] = [[] for _ in group]
        for r in names:
            keep = [k for k, a in enumerate(arms) if r == "continuation" or a.sweep != "layer"]
            sub = [arms[k] for k in keep]  # the layer sweep is read with the continuation readout only (cost)
            res = _score_many(loaded, group, sub, subset_edits(edits, keep) if len(keep) < len(arms) else edits, r,
                              batch_size, positions, judge, token_budget)
            for i, it in enumerate(group):
                rows[i] += _item_rows(it, sub, res, i, {**base, "scorer": r})
        for it, rr in zip(group, rows):
            store.write(rr, f"{unit}{it.id}")
        bar.update(len(group))
    bar.close()


def _check_readouts(readouts: Sequence[str], positions: str) -> list[str]:
    from evals.scorers import SCORERS

    bad = [r for r in readouts if r not in SCORERS]
    if bad:
        raise ValueError(f"unknown readout(s) {bad}; use {', '.join(READOUTS)} (or 'judged', library only)")
    if positions not in STEER_POSITIONS:
        raise ValueError(f"positions={positions!r}; use 'prompt' (the default: the continuation readout never "
                         f"steers the scored answer tokens) or 'all'")
    return list(dict.fromkeys(readouts))


def available_conditions(directions: dict[str, Direction], conditions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(conditions to run, notes): the polarity controls (``OPTIONAL_CONDITIONS``) missing from the direction
    file are skipped with a note rather than an error; any other missing direction stays an error."""
    keep, notes = [], []
    for c in conditions:
        name = c.lstrip("-")
        if name in OPTIONAL_CONDITIONS and name not in directions:
            notes.append(f"condition {c!r} skipped: the direction file has no {name!r} direction (re-run the probes "
                         "stage with the polarity controls to add it); the verdict's specificity clause is "
                         "'untested'" if name == "polarity" else
                         f"condition {c!r} skipped: the direction file has no {name!r} direction (re-run the probes "
                         "stage with the polarity controls to add it)")
            continue
        keep.append(c)
    return keep, notes


def run_steering(loaded: Any, directions: dict[str, Direction], out_dir: str | Path,
                 conditions: Sequence[str] = DEFAULT_CONDITIONS, doses: Sequence[float] | None = None,
                 layer: int | None = None, sweep_layers: Sequence[int] | None = None,
                 sweep_dose: float | None = None, dimensions: Sequence[str] | None = None,
                 scorer: str | None = None, profile: str | ScoringProfile = "full", target: str = "self_model",
                 positions: str = DEFAULT_POSITIONS, items: Sequence[Any] | None = None, overwrite: bool = False,
                 seed: int = 0, verdict_shift: dict[str, float] | None = None, judge: Any = None,
                 layers: Sequence[int] | None = None, n_random: int | None = None,
                 readouts: Sequence[str] | None = None, calibrate: bool = True,
                 n_null: int | None = None, planted_from: str = "held_out") -> dict[str, Any]:
    """Steer the base model with every condition at every dose and score every item with every readout.
    Returns paths and timings; tables are written under ``out_dir``.

    ``readouts``: default ``continuation`` and ``choice`` (both batched over arms); ``judged`` (one pass per
    arm, needs ``judge``) is library-only. ``scorer``: one readout (kept for old callers). ``positions``: where
    the continuation readout's vector is added, ``prompt`` (default: never on the scored answer) or ``all``.
    ``verdict_shift``: {group: tuned - base} (``tuned_shift_from``) to set the verdict's expected sign.
    ``calibrate``: run ``steering.calibration`` at the verdict dose (``n_null`` random directions, default
    ``calibration.N_NULL``; ``planted_from``: see ``run_calibration``)."""
    from steering.reports import steering_tables, write_reports

    t0 = time.time()
    # empty lists (as in a config file) mean "the default"; ``layers`` is the layer sweep
    conditions = tuple(conditions) if conditions else DEFAULT_CONDITIONS
    doses = doses or None
    sweep_layers = sweep_layers or layers or None
    readouts = _check_readouts(readouts or ([scorer] if scorer else READOUTS), positions)
    prof = get_profile(profile, n_random=n_random)
    doses = tuple(float(x) for x in (doses if doses is not None else prof.doses))
    if 0.0 not in doses:
        doses = (0.0, *doses)
    other_doses = tuple(prof.other_doses) if prof.other_doses is not None and doses == prof.doses else doses
    for d in directions.values():
        d.validate_for(loaded)
    conditions, notes = available_conditions(directions, conditions)
    conds = condition_directions(directions, conditions, prof.n_random, target, seed)
    layer = default_layer(directions, target, loaded.n_layers) if layer is None else int(layer)
    tdir = directions.get(target) or next(iter(directions.values()))
    sweep = list(sweep_layers) if sweep_layers is not None else sweep_layers_for(tdir, prof.sweep_layers, layer)
    sweep_dose = float(sweep_dose) if sweep_dose is not None else sorted(doses)[len(doses) // 2]
    arms_mon = steering_arms(conds, doses, layer, sweep, sweep_dose)
    arms_oth = steering_arms(conds, other_doses, layer)
    n_layers = loaded.n_layers
    edits_mon, edits_oth = arm_edits(arms_mon, conds, n_layers), arm_edits(arms_oth, conds, n_layers)
    sel = select_items(dimensions, prof.items_per_dim, prof.monitoring_items, items, readouts[0])
    out_dir = Path(out_dir)
    params = {"experiment": "steering", "model": loaded.spec.to_dict(), "conditions": list(conditions),
              "doses": list(doses), "other_doses": list(other_doses), "layer": layer, "sweep_layers": sweep,
              "sweep_dose": sweep_dose, "n_random": prof.n_random, "readouts": readouts, "positions": positions,
              "items": [it.id for it in sel], "directions": {k: hash_jsonable(v.raw.tolist()) for k, v in
                                                             directions.items()}, "seed": seed}
    store = result_store(out_dir, params, overwrite)
    base = {"experiment": "steering", "model": BASE_MODEL, "positions": positions}  # steering scores the base model
    t1 = time.time()
    score_items(loaded, sel, lambda it: arms_mon if it.dimension in MONITORING else arms_oth,
                lambda it: edits_mon if it.dimension in MONITORING else edits_oth, store, base,
                prof.batch_size, positions, "steering: items", judge, readouts, prof.token_budget, prof.items_per_pass)
    t_score = time.time() - t1
    results = store.merge(RESULTS_JSONL)
    t2 = time.time()
    coh = store.cached("coherence", lambda: coherence_guard(
        loaded, arms_mon, edits_mon, _paragraphs(prof), prompts=_prompts(prof),
        max_new_tokens=prof.max_new_tokens, batch_size=prof.batch_size, token_budget=prof.token_budget))
    t_coh = time.time() - t2
    rows = store.rows()
    tables = steering_tables(rows, coh, verdict_shift)
    t3 = time.time()
    cal, cal_notes = None, []
    if calibrate:
        cal, cal_notes = run_calibration(loaded, directions, conds, rows, tables["verdict"], sel, out_dir,
                                         n_null=n_null, n_random=prof.n_random, target=target, seed=seed,
                                         tuned_shift=verdict_shift, batch_size=prof.batch_size,
                                         positions=positions, readouts=readouts, overwrite=overwrite,
                                         planted_from=planted_from, token_budget=prof.token_budget,
                                         items_per_pass=prof.items_per_pass)
    t_cal = time.time() - t3
    notes = [*notes, *cal_notes]
    reports = write_reports(out_dir, rows, coh, kind="steering", tuned_shift=verdict_shift, tables=tables,
                            calibration=cal, notes=notes, positions=positions)
    if cal is not None:
        reports["calibration"] = out_dir / CALIBRATION_CSV
        reports["calibration_json"] = out_dir / "calibration.json"
    timing = {"scoring_s": round(t_score, 1), "coherence_s": round(t_coh, 1), "calibration_s": round(t_cal, 1),
              "total_s": round(time.time() - t0, 1), "n_items": len(sel), "n_arms_monitoring": len(arms_mon),
              "n_arms_other": len(arms_oth), "readouts": readouts}
    write_manifest(out_dir, "steering", inputs={"directions": params["directions"], "items": hash_jsonable(params["items"])},
                   params={**params, "profile": asdict(prof), "coherence_rule": COHERENCE_RULE, "notes": notes},
                   outputs={"results": results.name, **{k: Path(v).name for k, v in reports.items()}},
                   timing=timing, sign=SIGN)
    return {"results": results, **reports, "timing": timing, "notes": notes}


def run_calibration(loaded: Any, directions: dict[str, Direction], conds: dict[str, Direction | None],
                    rows: Sequence[dict], verdict: Any, sel: Sequence[Any], out_dir: str | Path,
                    n_null: int | None = None, n_random: int = 5, target: str = "self_model", seed: int = 0,
                    tuned_shift: dict[str, float] | None = None, batch_size: int = 32,
                    positions: str = DEFAULT_POSITIONS, readouts: Sequence[str] = READOUTS,
                    overwrite: bool = False, planted_from: str = "held_out", token_budget: int | None = None,
                    items_per_pass: int = ITEMS_PER_PASS) -> tuple[Any, list[str]]:
    """Calibrate the decision rule on the monitoring group at the verdict dose and layer (``steering.calibration``):
    score the null directions and the planted one that ``rows`` lack, write ``calibration.csv`` (summary),
    ``calibration_verdicts.csv`` (one row per direction and readout) and ``calibration.json``.
    ``planted_from``: ``held_out`` (default: monitoring items the verdict never scores) or ``scored`` (the
    verdict's own monitoring items; for models without structure shared across items, such as a random test
    model, where a held-out direction cannot move the scored items). Returns (summary table or None, notes)."""
    import pandas as pd

    from steering import calibration as cal

    out_dir = Path(out_dir)
    n_null = int(n_null or cal.N_NULL)
    mon = verdict[verdict["group"] == cal.GROUP] if len(verdict) else verdict
    mon = mon[mon["dose"].notna()] if len(mon) and "dose" in mon else mon.iloc[0:0]
    mon_items = [it for it in sel if it.dimension in MONITORING]
    if target not in directions or not len(mon) or len(mon_items) < 2:
        why = (f"no {target!r} direction" if target not in directions else
               "no verdict dose passes the coherence guard" if not len(mon) else "fewer than 2 monitoring items")
        return None, [f"calibration skipped: {why}"]
    dose, layer, sign = float(mon.iloc[0]["dose"]), int(mon.iloc[0]["layer"]), float(mon.iloc[0]["expected_sign"])
    tdir = directions[target]
    nulls = cal.null_directions(tdir, n_null, seed)
    sel_ids = {it.id for it in sel}
    if planted_from not in ("held_out", "scored"):
        raise ValueError(f"planted_from={planted_from!r}; use 'held_out' or 'scored'")
    held = [it for it in load_items(list(MONITORING), kinds=["pair", "action"]) if it.id not in sel_ids] \
        if planted_from == "held_out" else list(mon_items)
    held = held[:MAX_PLANTED_ITEMS]
    notes: list[str] = []
    extra: dict[str, Direction | None] = {"none": None}
    extra.update({d.name: d for d in nulls if d.name not in conds})
    planted: list[Direction] = []
    if held:
        planted.append(cal.planted_direction(loaded, held, tdir, layer, sign, batch_size))
        planted += [cal.planted_gradient(loaded, held[:MAX_GRADIENT_ITEMS], tdir, layer, r, sign)
                    for r in readouts if r in READOUTS]
        extra.update({p.name: p for p in planted})
    else:
        notes.append("calibration: no held-out monitoring items left for the planted direction")
    arms = [a for a in steering_arms(extra, [dose], layer) if a.op != "none"]
    arms = [Arm(a.condition, "random" if a.condition.startswith("random") else a.family, a.op, a.layer, a.dose,
                "dose") for a in arms]
    edits = arm_edits(arms, extra, loaded.n_layers)
    params = {"experiment": "calibration", "model": loaded.spec.to_dict(), "dose": dose, "layer": layer,
              "sign": sign, "n_null": n_null, "items": [it.id for it in mon_items], "readouts": list(readouts),
              "positions": positions, "planted_from": planted_from, "planted_items": [it.id for it in held],
              "seed": seed,
              "target": hash_jsonable(tdir.raw.tolist())}
    store = result_store(out_dir / "calibration", params, overwrite)
    score_items(loaded, mon_items, lambda it: arms, lambda it: edits, store,
                {"experiment": "calibration", "model": BASE_MODEL, "positions": positions}, batch_size, positions,
                "calibration: items", readouts=readouts, token_budget=token_budget, items_per_pass=items_per_pass)
    new = store.rows()
    keep = {"none", "toaster", "polarity", *(d.name for d in nulls)}
    reused = [r for r in normalise_all(rows) if r["dimension"] in MONITORING and r["arm"] in keep and (
        r["op"] == "none" or (r["sweep"] == "dose" and r["layer"] == layer and abs(float(r["dose"]) - dose) < 1e-12))]
    null_names = [d.name for d in nulls]
    verdicts, summary = [], []
    for readout in readouts:
        rr = [r for r in reused + new if (r.get("scorer") or "continuation") == readout]
        mine = [p.name for p in planted if not p.name.startswith("planted_grad_") or p.name.endswith(f"_{readout}")]
        v = cal.calibration_verdicts(rr, null_names, n_random, tuned_shift, planted=mine).assign(readout=readout)
        verdicts.append(v)
        summary += cal.calibration_summary(v, readout)
    table = pd.DataFrame(summary)
    vt = pd.concat(verdicts, ignore_index=True)
    with atomic_path(out_dir / CALIBRATION_CSV) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out_dir / "calibration_verdicts.csv") as tmp:
        vt.to_csv(tmp, index=False)
    atomic_write_json(out_dir / "calibration.json", {
        "summary": table.to_dict("records"), "group": cal.GROUP, "dose": dose, "layer": layer, "expected_sign": sign,
        "n_null": n_null, "controls_per_null": min(n_random, n_null - 1), "max_fpr": cal.MAX_FPR,
        "planted_from": planted_from,
        "planted": {p.name: p.provenance for p in planted}, "notes": notes,
        "rule": "the steering verdict's RULE (steering.rule), each null direction in self_model's place"})
    return table, notes


def result_store(out_dir: str | Path, params: dict[str, Any], overwrite: bool = False) -> ResultStore:
    """The resumable chunk store of an experiment (``params["experiment"]`` is the folder's kind); every model
    spec in ``params`` is keyed by its content hash too (``content_params``)."""
    return ResultStore(out_dir, content_params(params), overwrite, kind=str(params.get("experiment") or "chunks"))


def _paragraphs(prof: ScoringProfile) -> list[str]:
    from steering.coherence import neutral_paragraphs

    return neutral_paragraphs()[:prof.n_paragraphs]


def _prompts(prof: ScoringProfile) -> list[str]:
    from steering.coherence import GEN_PROMPTS

    return list(GEN_PROMPTS[:prof.gen_prompts])


def run_ablation(base_loaded: Any, tuned_loaded: Any, directions: dict[str, Direction], out_dir: str | Path,
                 conditions: Sequence[str] = ("self_model", "toaster", "random"), dimensions: Sequence[str] | None = None,
                 profile: str | ScoringProfile = "full", layers: Sequence[int] | None = None, positions: str = "all",
                 items: Sequence[Any] | None = None, clamp_items: int = 16, overwrite: bool = False,
                 seed: int = 0, n_random: int | None = None) -> dict[str, Any]:
    """Ablate ``self_model`` (and controls) in the tuned model; measure the share of the tuned-minus-base
    shift each removes. ``layers``: where to ablate (default: every layer of the direction).
    ``base_loaded`` / ``tuned_loaded``: two models, or two views of one (``models.adapters.load_adapters``:
    ``shared.view(None)``, ``shared.view(name)``), each used inside its ``active()``."""
    from steering.reports import write_reports

    t0 = time.time()
    prof = get_profile(profile, n_random=n_random)
    for d in directions.values():
        d.validate_for(tuned_loaded)
    conds = condition_directions(directions, ["none", *conditions], prof.n_random, "self_model", seed)
    if layers is not None:  # restrict every direction to the chosen layers
        conds = {k: None if v is None else _restrict(v, layers) for k, v in conds.items()}
    sel = select_items(dimensions, prof.ablation_items_per_dim, prof.ablation_monitoring_items, items)
    # the clamp target: the base model's mean projection onto self_model at each layer
    clamp_values = {}
    if conds.get("self_model") is not None:
        encs = [e for pr in pair_encodings(base_loaded, sel[:clamp_items]) for e in pr]
        d = conds["self_model"]
        with base_loaded.active():
            clamp_values["self_model"] = mean_projection(base_loaded, d, d.layers, encs, prof.batch_size)
    arms = ablation_arms(conds)
    edits = arm_edits(arms, conds, tuned_loaded.n_layers, clamp_values)
    out_dir = Path(out_dir)
    params = {"experiment": "ablation", "base": base_loaded.spec.to_dict(), "tuned": tuned_loaded.spec.to_dict(),
              "conditions": list(conditions), "n_random": prof.n_random, "layers": list(layers or []),
              "positions": positions, "items": [it.id for it in sel], "clamp_values": clamp_values,
              "directions": {k: hash_jsonable(v.raw.tolist()) for k, v in directions.items()}, "seed": seed}
    store = result_store(out_dir, params, overwrite)
    none_arm = [a for a in arms if a.op == "none"]
    with base_loaded.active():  # views of one shared model: the adapter off (models.adapters)
        score_items(base_loaded, sel, lambda it: none_arm, lambda it: {}, store,
                    {"experiment": "ablation", "model": BASE_MODEL, "scorer": "continuation", "positions": positions},
                    prof.batch_size, positions, "ablation: base", token_budget=prof.token_budget,
                    items_per_pass=prof.items_per_pass, unit=BASE_MODEL)
    with tuned_loaded.active():  # ... and on
        score_items(tuned_loaded, sel, lambda it: arms, lambda it: edits, store,
                    {"experiment": "ablation", "model": "tuned", "scorer": "continuation", "positions": positions},
                    prof.batch_size, positions, "ablation: tuned", token_budget=prof.token_budget,
                    items_per_pass=prof.items_per_pass, unit="tuned")
        results = store.merge(RESULTS_JSONL)
        coh = coherence_guard(tuned_loaded, arms, edits, _paragraphs(prof), prompts=_prompts(prof),
                              max_new_tokens=prof.max_new_tokens, batch_size=prof.batch_size,
                              token_budget=prof.token_budget)
    reports = write_reports(out_dir, store.rows(), coh, kind="ablation")
    timing = {"total_s": round(time.time() - t0, 1), "n_items": len(sel), "n_arms": len(arms)}
    write_manifest(out_dir, "ablation", inputs={"directions": params["directions"]},
                   params={**params, "profile": asdict(prof), "coherence_rule": COHERENCE_RULE},
                   outputs={"results": results.name, **{k: Path(v).name for k, v in reports.items()}},
                   timing=timing, sign=SIGN)
    return {"results": results, **reports, "timing": timing}


def _restrict(d: Direction, layers: Sequence[int]) -> Direction:
    keep = [L for L in d.layers if L in set(int(x) for x in layers)]
    rows = [d.row(L) for L in keep]
    return Direction(name=d.name, layers=keep, raw=d.raw[rows], resid_norm=d.resid_norm[rows],
                     site_kind=d.site_kind, position=d.position, provenance=d.provenance, metrics=d.metrics)
