"""The demo/real-model pipeline as stages: tune -> contamination, identity, probes, evals -> ablation
-> steering -> report. Each stage calls one library entry point; this module only wires them.

Run directory (``runs/<name>/``; every path from ``pipeline.layout.RunLayout``)::

    config.toml            resolved configuration
    tune/<condition>/      LoRA adapter + manifest + loss curve
    contamination/         contamination.json (share of training examples touching each evaluated topic)
    identity/              identity check of base and each tune
    activations/           activation caches (per model, per dataset), shared by the probes stage
    probes/                directions.safetensors, metrics.csv, plots
    evals/                 results.csv (one row per item x model x scorer), summaries, plots
    ablation/              ablation of self_model in the conscious tune (+ controls), necessity table
    steering/              steering of the base model, dose-response, coherence guard, verdict
    profile/               profile test: steering effects vs tune shifts over the 21 dimensions
    patching/              activation patching base <-> conscious tune by layer and subspace (opt-in)
    prevention/            tunes with self_model / random prevented, checkpoint series (opt-in)
    report/                report.md + self-contained report.html + figures
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from artifacts import atomic_write_json, atomic_write_text, hash_file, hash_jsonable
from artifacts.atomic import to_jsonable
from artifacts.rows import BASE_MODEL
from models import ModelSpec
from models.provenance import model_provenance
from pipeline import judging
from pipeline.config import THROUGHPUT_KEYS, dump_toml, series_names, series_tunes
from pipeline.layout import RunLayout
from pipeline.runner import Stage


def model_spec(cfg: dict[str, Any]) -> ModelSpec:
    m = cfg["model"]
    return ModelSpec(base=m["base"], dtype=m["dtype"], device=m["device"], device_map=m["device_map"] or None)


def keyed(cfg: dict[str, Any], section: str) -> dict[str, Any]:
    """A config section without its throughput keys (``THROUGHPUT_KEYS``: batching, not results) for a stage key."""
    return {k: v for k, v in cfg[section].items() if k not in THROUGHPUT_KEYS.get(section, ())}


def run_dir(cfg: dict[str, Any]) -> Path:
    return RunLayout.of(cfg).root


def _tune_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The tuning profile's settings with the config's non-zero overrides."""
    from tuning.profiles import profile

    t = cfg["tune"]
    keys = {"n": "n_identity", "n_instructions": "n_instruction", "rank": "rank", "alpha": "alpha", "lr": "lr",
            "epochs": "epochs", "batch_size": "batch_size"}
    out = profile(t["profile"], **{k: (t[v] or None) for k, v in keys.items()})
    # the distillation's batches enter the settings (and the tune key) only when set: they change its samples
    return {**out, **{k: t[k] for k in ("distill_batch_size", "distill_token_budget") if t.get(k)}}


def identity_data(cfg: dict[str, Any]) -> dict[str, list[dict]]:
    """The training examples of each condition: the shipped datasets, or the original files."""
    from tuning.datasets import build_identity_dataset, load_original

    t, seed = cfg["tune"], cfg["run"]["seed"]
    if t["data_dir"]:
        data = load_original(t["data_dir"], conditions=t["conditions"])
        return {c: data[c] for c in t["conditions"]}
    n = _tune_settings(cfg)["n"]
    return {c: build_identity_dataset(c, n=n, seed=seed) for c in t["conditions"]}


def tune_seeds(cfg: dict[str, Any]) -> list[int]:
    """The tuning seeds: ``[tune] seeds``, or ``[run] seed`` alone."""
    return list(cfg["tune"]["seeds"]) or [cfg["run"]["seed"]]


def series_specs(cfg: dict[str, Any]) -> dict[str, ModelSpec]:
    """The series' other models (``[series] models``: a base, or "BASE::ADAPTER_DIR"), by name."""
    m = cfg["model"]
    out = {}
    for name, entry in zip(series_names(cfg), cfg["series"]["models"]):
        base, _, adapter = str(entry).partition("::")
        out[name] = ModelSpec(base=base, adapter=adapter or None, dtype=m["dtype"], device=m["device"],
                              device_map=m["device_map"] or None)
    return out


def tune_table(cfg: dict[str, Any]) -> dict[str, tuple[str, float, int, str]]:
    """{model name: (condition, uncertainty share, seed, folder under the run)} of every tune: each condition
    and series tune x seed. One seed: name = condition, folder ``tune/<name>``; several: ``<name>.seed<k>``
    in ``tune/<name>/seed<k>``."""
    from analysis.seeds import seed_model

    seeds, run = tune_seeds(cfg), RunLayout.of(cfg)
    tunes = {c: (c, 0.0) for c in cfg["tune"]["conditions"]}
    for name, share in series_tunes(cfg).items():
        tunes.setdefault(name, (cfg["series"]["condition"], share))
    return {seed_model(t, k, len(seeds)): (c, share, k, run.tune(t, k if len(seeds) > 1 else None).name)
            for t, (c, share) in tunes.items() for k in seeds}


def tune_data(cfg: dict[str, Any], data: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """{tune name (without seed): training examples}: the condition's data, plus the uncertainty share."""
    from tuning.datasets import build_identity_dataset
    from tuning.uncertainty import mix_uncertainty

    out = {c: data[c] for c in cfg["tune"]["conditions"]}
    c = cfg["series"]["condition"]
    for name, share in series_tunes(cfg).items():
        own = data.get(c) or build_identity_dataset(c, n=_tune_settings(cfg)["n"], seed=cfg["run"]["seed"])
        out[name] = mix_uncertainty(own, share, seed=cfg["run"]["seed"])
    return out


def build_stages(cfg: dict[str, Any]) -> list[Stage]:
    from analysis.seeds import split_seed
    from evals.items import ITEMS_FILE

    spec = model_spec(cfg)
    run = RunLayout.of(cfg)
    conditions = list(cfg["tune"]["conditions"])
    settings = _tune_settings(cfg)
    data = identity_data(cfg)
    prov = model_provenance(spec)
    items_sha = hash_file(ITEMS_FILE)  # the shipped preference items: contamination, probes (-> steering) and evals read them
    tunes = tune_table(cfg)
    mixes = tune_data(cfg, data)
    first = tune_seeds(cfg)[0]  # probes, ablation, steering, patching and prevention read the first seed's tunes
    adapters = {c: str(run.root / f) for _, (c, sh, k, f) in tunes.items() if k == first and sh == 0 and c in conditions}
    tuned = {name: str(run.root / f) for name, (_, _, _, f) in tunes.items()}  # identity and evals score every tune
    tune_names = [f for _, _, _, f in tunes.values()]
    stages: list[Stage] = []

    for name, (_, share, k, f) in tunes.items():
        t = split_seed(name)[0]

        def run_tune(folder: Path, t=t, k=k) -> dict:
            from tuning.recipe import tune_condition

            tune_condition(spec, mixes[t], folder, settings, seed=k)  # distillation cached beside the tunes
            return {"condition": t, "n_identity": len(mixes[t]), "seed": k}
        stages.append(Stage(f, run_tune, {"model": prov, "settings": settings, "seed": k,
                                          "data": hash_jsonable([e["messages"] for e in mixes[t]]),
                                          **({"uncertainty_share": share} if share else {})}))

    def run_contamination(folder: Path) -> dict:
        from evals.contamination import contamination_report, max_share

        reports = {c: contamination_report(d) for c, d in mixes.items()}
        atomic_write_json(run.contamination.report, reports)
        return {c: max_share(r) for c, r in reports.items()}
    stages.append(Stage(run.contamination.name, run_contamination,
                        {"data": {c: hash_jsonable([e["messages"] for e in d]) for c, d in mixes.items()},
                         "items": items_sha}))

    def run_identity(folder: Path) -> dict:
        from tuning.identity_check import check_identity

        specs = {BASE_MODEL: spec, **{n: spec.with_adapter(a) for n, a in tuned.items()}}
        i, n_gen = cfg["identity"], cfg["identity"]["n_generate"]
        return to_jsonable(check_identity(specs, folder, reference=BASE_MODEL, batch_size=i["batch_size"],
                                          token_budget=i["token_budget"] or None,
                                          **({"n_generate": n_gen} if n_gen >= 0 else {})))
    n_gen = cfg["identity"]["n_generate"]
    stages.append(Stage(run.identity.name, run_identity, {"model": prov, **({"n_generate": n_gen} if n_gen >= 0 else {})},
                        after=tune_names))
    stages += _direction_stages(cfg, spec, run, prov, data, settings, adapters, items_sha, tuned, tune_names)
    stages.append(Stage(run.report.name, _run_report(cfg, run.root), {"report": cfg["report"]},
                        after=[s.name for s in stages]))
    return stages


def _run_report(cfg: dict[str, Any], root: Path):
    def run_report(folder: Path) -> dict:
        from pipeline.report import build_report

        return build_report(cfg, root, folder)
    return run_report


def _direction_stages(cfg: dict[str, Any], spec: ModelSpec, run: RunLayout, prov: Any, data: dict[str, list[dict]],
                      settings: dict[str, Any], adapters: dict[str, str], items_sha: str, tuned: dict[str, str],
                      tune_names: list[str]) -> list[Stage]:
    """Probes, evals, ablation, steering and the causal stages (in that order)."""
    seed = cfg["run"]["seed"]
    conditions = list(adapters)
    stages: list[Stage] = []
    first_tunes = [run.stage_name(adapters[c]) for c in conditions]

    def run_probes_stage(folder: Path) -> dict:
        from probes.run import run_probes

        p = cfg["probes"]
        return run_probes(spec, adapters, folder, n_per_condition=p["n_per_condition"], seed=seed,
                          max_eval_per_dimension=p["max_eval_per_dimension"] or None,
                          cache_dir=run.activations.path, batch_size=p["batch_size"],
                          token_budget=p["token_budget"] or None, probe_backend=p["backend"],
                          direction_source=p["direction_source"])
    if cfg["probes"]["enabled"]:
        stages.append(Stage(run.probes.name, run_probes_stage, {"model": prov, "probes": _probes_key(cfg),
                                                         "seed": seed, "items": items_sha}, after=first_tunes))

    judging.check(cfg)  # a bad [judge] section fails here, before any stage runs
    judge_on, judge_params = judging.enabled(cfg), judging.manifest_params(cfg)

    def run_evals(folder: Path) -> dict:
        from evals.items import load_items
        from evals.run import cap_items, evaluate_models

        e = cfg["evals"]
        items = cap_items(load_items(e["dimensions"] or None), e["max_items_per_dimension"])
        specs = {BASE_MODEL: spec, **{n: spec.with_adapter(a) for n, a in tuned.items()}, **series_specs(cfg)}
        if not judge_on:
            return evaluate_models(specs, items, e["scorers"], folder, batch_size=e["batch_size"],
                                   token_budget=e["token_budget"] or None)
        items = [it for it in items if it.kind != "open"] + judging.items(cfg)
        scorers = [*dict.fromkeys([*e["scorers"], "judged"])]
        return evaluate_models(specs, items, scorers, folder, batch_size=e["batch_size"],
                               judge=judging.make_judge(cfg, run.root), generator=judging.make_generator(cfg, run.root),
                               params=judge_params, token_budget=e["token_budget"] or None)
    # token_budget changes batching, not results (models.batching), so it is not part of the stage key
    ekey = keyed(cfg, "evals")
    extra = {"series": {n: model_provenance(sp) for n, sp in series_specs(cfg).items()}} if cfg["series"]["models"] \
        else {}
    stages.append(Stage(run.evals.name, run_evals, {"model": prov, "evals": ekey, "items": items_sha, **extra,
                                             **({"judged": judge_params} if judge_on else {})}, after=tune_names))

    has_conscious = "conscious" in conditions
    if cfg["ablation"]["enabled"] and has_conscious:
        def run_ablation_stage(folder: Path) -> dict:
            from models.adapters import load_adapters
            from probes.directions import load_directions
            from steering.experiment import get_profile, run_ablation

            dirs = load_directions(run.probes.directions)
            shared = load_adapters(spec, {"conscious": adapters["conscious"]})  # base = the adapter off
            a = cfg["ablation"]
            prof = get_profile(cfg["steering"]["profile"], n_random=a["n_random"], batch_size=a["batch_size"] or None,
                               token_budget=a["token_budget"] or None)
            res = run_ablation(shared.view(None), shared.view("conscious"), dirs, folder, profile=prof, seed=seed)
            del shared
            gc.collect()
            return to_jsonable(res)
        stages.append(Stage(run.ablation.name, run_ablation_stage, {"model": prov, "ablation": keyed(cfg, "ablation"),
                                                             "profile": cfg["steering"]["profile"], "seed": seed},
                            after=[run.probes.name, run.stage_name(adapters["conscious"])]))

    def run_steering_stage(folder: Path) -> dict:
        from artifacts import read_jsonl
        from models import load_model
        from probes.directions import load_directions
        from steering.effects import tuned_shift_from
        from steering.experiment import DEFAULT_CONDITIONS, get_profile, run_steering

        s = cfg["steering"]
        dirs = load_directions(run.probes.directions)
        shift = None
        abl = run.ablation.results
        if abl.exists():
            shift = tuned_shift_from(read_jsonl(abl))
        prof = get_profile(s["profile"], n_random=s["n_random"], batch_size=s["batch_size"] or None,
                           token_budget=s["token_budget"] or None, items_per_pass=s["items_per_pass"] or None)
        loaded = load_model(spec)
        readouts = list(dict.fromkeys([*s["readouts"], *([s["scorer"]] if s["scorer"] else [])]))
        res = run_steering(loaded, dirs, folder, conditions=s["conditions"] or DEFAULT_CONDITIONS,
                           doses=s["doses"] or None, sweep_layers=s["layers"] or None, readouts=readouts,
                           positions=s["positions"], profile=prof, seed=seed, verdict_shift=shift,
                           calibrate=s["calibrate"], n_null=s["n_null"])
        if judge_on and cfg["judge"]["steering"]:  # judged rows beside the cheap ones: steering/judged/
            from dataclasses import replace

            # free-form answers are generated under steering, so every position (generated tokens too) is steered
            res["judged"] = run_steering(loaded, dirs, run.steering.judged.path, conditions=s["conditions"] or
                                         DEFAULT_CONDITIONS, doses=cfg["judge"]["steering_doses"] or s["doses"] or None,
                                         scorer="judged", positions="all", calibrate=False,
                                         profile=replace(prof, sweep_layers=0), seed=seed,
                                         judge=judging.make_judge(cfg, run.root), verdict_shift=shift)
        return to_jsonable(res)
    steer_after = [run.probes.name] + ([run.ablation.name] if cfg["ablation"]["enabled"] and has_conscious else [])
    if cfg["steering"]["enabled"]:
        stages.append(Stage(run.steering.name, run_steering_stage, {"model": prov, "steering": _on(keyed(cfg, "steering")),
                                                             "seed": seed, **({"judged": judge_params} if judge_on
                                                                              else {})}, after=steer_after))

    stages += causal_stages(cfg, spec, run, prov, data, settings, adapters)
    return stages


def _probes_key(cfg: dict[str, Any]) -> dict[str, Any]:
    """The probes section in the stage key; the default direction source is left out (earlier runs' keys hold)."""
    return {k: v for k, v in _on(keyed(cfg, "probes")).items() if (k, v) != ("direction_source", "mean_diff")}


def _on(section: dict[str, Any]) -> dict[str, Any]:
    """A section without its ``enabled`` switch (a stage's key: switching a stage on again changes nothing)."""
    return {k: v for k, v in section.items() if k != "enabled"}


def write_config(cfg: dict[str, Any]) -> Path:
    run = RunLayout.of(cfg)
    run.root.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(run.config, dump_toml(cfg))



def causal_stages(cfg: dict[str, Any], spec: ModelSpec, run: RunLayout, prov: Any, data: dict[str, list[dict]],
                  settings: dict[str, Any], adapters: dict[str, str]) -> list[Stage]:
    """The profile test (on by default), activation patching and prevention during the tune (opt-in)."""
    seed = cfg["run"]["seed"]
    stages: list[Stage] = []
    if cfg["profile"]["enabled"]:
        def run_profile_stage(folder: Path) -> dict:
            from analysis.profile import run_profile

            return to_jsonable(run_profile(run.steering.path, run.evals.path, folder,
                                           scorer=cfg["steering"].get("scorer") or "continuation",
                                           n_perm=cfg["profile"]["n_perm"]))
        stages.append(Stage(run.profile.name, run_profile_stage, {"profile": cfg["profile"]},
                            after=[run.evals.name, run.steering.name]))
    if "conscious" not in adapters:
        return stages
    p = cfg["patching"]
    if p["enabled"]:
        def run_patching_stage(folder: Path) -> dict:
            from models import load_model
            from probes.directions import load_directions
            from steering.experiment import select_items, sweep_layers_for
            from steering.patching import run_patching

            dirs = load_directions(run.probes.directions)
            loaded = load_model(spec.with_adapter(adapters["conscious"]))
            sm = dirs["self_model"]
            sel = int(sm.metrics.get("selected_layer", sm.layers[len(sm.layers) // 2]))
            layers = p["layers"] or sweep_layers_for(sm, p["n_layers"], sel)
            names = [n for n in ("self_model", "tune_shift") if n in dirs]
            items = select_items(None, p["items_per_dim"], p["monitoring_items"])
            res = run_patching(loaded, dirs, folder, items, layers, names, p["n_random"], p["batch_size"], seed)
            del loaded
            gc.collect()
            return to_jsonable(res)
        stages.append(Stage(run.patching.name, run_patching_stage, {"model": prov, "patching": p, "seed": seed},
                            after=[run.probes.name, run.stage_name(adapters["conscious"])]))
    v = cfg["prevention"]
    if v["enabled"]:
        def run_prevention_stage(folder: Path) -> dict:
            from evals.items import load_items
            from evals.run import cap_items
            from probes.directions import load_directions
            from steering.experiment import select_items
            from steering.prevention import run_prevention

            items = [it for it in cap_items(load_items(), v["max_items_per_dimension"]) if it.kind in ("pair", "action")]
            ck = select_items(None, 0, v["checkpoint_items"])  # monitoring items only: cheap checkpoints
            ck += select_items(None, 1, 0)  # + one item per other dimension for the stage means
            dirs = load_directions(run.probes.directions)
            res = run_prevention(spec, data["conscious"], dirs, folder, settings, items, ck,
                                 layer=None if v["layer"] < 0 else v["layer"], mode=v["mode"], dose=v["dose"],
                                 checkpoint_every=v["checkpoint_every"], seed=seed, batch_size=v["batch_size"],
                                 max_steps=v["max_steps"] or None,
                                 distill_cache=run.distill_cache(seed))
            return to_jsonable(res)
        stages.append(Stage(run.prevention.name, run_prevention_stage,
                            {"model": prov, "prevention": v, "settings": settings,
                             "seed": seed, "data": hash_jsonable([e["messages"] for e in data["conscious"]])},
                            after=[run.probes.name, run.stage_name(adapters["conscious"])]))
    return stages
