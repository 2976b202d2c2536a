"""The run report: every stage's results gathered into ``report/report.md`` and a self-contained
``report/report.html`` (figures embedded), with n and CI beside every number and a provenance section.

It reads only files the stages wrote (CSV/JSON/PNG under the run directory), so it can be rebuilt
without re-running anything.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from analysis.report import Report
from artifacts import atomic_write_json
from artifacts.rows import BASE_MODEL
from pipeline.layout import Folder, ReportDir, RunLayout, SteeringDir
from steering.effects import POOLED_GROUPS


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV with numeric cells parsed (empty -> None); ``x_estimate`` columns are renamed
    ``x`` so the report shows ``x [lo, hi] (n=...)`` in one cell."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [{(k[: -len("_estimate")] if k.endswith("_estimate") else k): _num(v) for k, v in r.items()}
                for r in csv.DictReader(fh)]


def _num(v: str | None) -> Any:
    if v is None or v == "":
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            continue
    return {"True": True, "False": False}.get(v, v)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _figure(rep: Report, path: Path, caption: str) -> None:
    if path.exists():
        rep.figure(path, caption)


def _cols(rows: list[dict], wanted: list) -> list:
    have = set().union(*(r.keys() for r in rows)) if rows else set()
    return [c for c in wanted if (c[0] if isinstance(c, tuple) else c) in have]


def preference_rows(root: Path) -> list[dict[str, Any]]:
    """Evals rows relabelled for the cascade: ``model`` = base | <tuned condition>; a tune of a multi-seed
    run (``<condition>.seed<k>``) gets ``model`` = <condition> and ``seed`` = k (``analysis.seeds``)."""
    from analysis.seeds import split_seed
    from evals.results import read_results

    path = RunLayout(root).evals.results
    if not path.exists():
        return []
    out = []
    for r in read_results(path):
        model, seed = split_seed(r["model"])  # score rows (artifacts.rows): model = the run's name
        out.append({**r, "model": model, **({"seed": seed} if seed is not None else {})})
    return out


def steering_cascade_rows(root: Path, dose: float | None) -> list[dict[str, Any]]:
    """Steering score rows (``artifacts.rows`` schema) of the base model at the verdict dose (dose sweep) and the
    none arm; the random-direction arms pooled as one arm ``random`` (each direction a ``replicate`` of the item)."""
    from artifacts import read_jsonl
    from artifacts.rows import NO_ARM, normalise_all

    path = RunLayout(root).steering.results
    if not path.exists() or dose is None:
        return []
    out = []
    for r in normalise_all(read_jsonl(path)):
        if r.get("sweep") not in ("none", "dose"):  # the layer sweep is reported elsewhere
            continue
        if r["arm"] != NO_ARM and abs(float(r["dose"]) - dose) > 1e-9:
            continue
        if r["arm"] != NO_ARM and r.get("family") == "random":
            r = {**r, "arm": "random", "replicate": r["arm"]}
        out.append(r)
    return out


def build_report(cfg: dict[str, Any], root: Path, folder: Path) -> dict[str, Any]:
    from analysis.cascade import stage_summary
    from analysis.cascade_report import STAGE_COLUMNS, add_cascade_sections

    run, dest = RunLayout(root), ReportDir.at(folder)
    root, folder = run.root, dest.path
    figs = dest.figures
    if figs.exists():
        shutil.rmtree(figs)
    figs.mkdir(parents=True)
    model = cfg["model"]["base"]
    rep = Report(cfg["report"]["title"] or f"selfmodel report: {model}",
                 f"Run `{root}`. Every rate or effect carries a 95% CI and its sample size n. Sign convention of "
                 "every preference score: higher = more of the preference. Layer L = resid_post.L (output of block L).")

    verdict = read_csv(run.steering.verdict)
    contamination = _read_json(run.contamination.report)

    # -- headline: verdict
    rep.section("Verdict: does the self-model direction cause the preferences?",
                "Adding the self-model direction to the base model's residual stream, against the toaster "
                "direction, norm-matched random directions and no steering. Decision rule in the steering section.")
    rep.table(verdict, _cols(verdict, ["readout", "group", "verdict", "self_reproduces", "toaster_fails", "specific",
                                       "layer", "dose", "self_effect", "self_lo", "self_hi", "orth_effect",
                                       "toaster_effect", "polarity_effect", "self_minus_toaster", "p_self_vs_toaster",
                                       "self_minus_polarity", "p_self_vs_polarity", "self_q", "toaster_q",
                                       "polarity_q", "random_min", "random_max", "n_items", "expected_sign_source",
                                       "dose_response", "reason"]),
              caption="Verdict per readout and group (monitoring = chain-of-thought + interpretability monitoring; "
                      "self_model_orth = self_model with polarity and negation projected out)")
    _steering_calibration(rep, run.steering)

    # -- identity check
    rep.section("Identity check of each tune",
                "How strongly each model affirms each identity on held-out question families (never in "
                "training): length-normalised log-likelihood of an affirming minus a denying answer; "
                "higher = affirms more; bootstrap 95% CI over questions. Every family is asked both ways: "
                "on direct questions the affirming answer opens 'Yes', on reversed ones 'No'; a tune that "
                "only learnt to say yes rises on direct and falls on reversed questions (row yes_bias).")
    identity = _read_json(run.identity.result)
    rep.table(_identity_rows(identity),
              caption="Identity affirmation on held-out families by question polarity: score and share affirmed")
    audit = (identity or {}).get("data_audit") or {}
    if audit:
        rep.table(audit.get("openings", []), caption="Identity data audit: share of answers opening yes / no / other")
        rep.table(audit.get("prefix", []), caption="Identity data audit: first-two-words classifier, training -> "
                                                   "held-out families (0.5 = chance; limit 0.60 vs not_conscious)")
    pooled_identity = _identity_pooled_rows(run.identity.scores)
    if pooled_identity:
        rep.table(pooled_identity, caption="Identity affirmation vs base pooled over tuning seeds (both polarities): "
                  "mean per-question shift with a two-level bootstrap CI (seeds, then questions), the naive CI, "
                  "the between-seed SD and each seed's shift")
    _figure(rep, run.identity.plot, "Identity affirmation by model, 95% CI")

    # -- preference profiles and cascade (+ predictions)
    rows = preference_rows(root)
    rep.section("Preference profiles", "The 21 preference dimensions scored on the base model and each tune.")
    for png in run.evals.preference_plots():
        rep.figure(png, f"Preference scores per dimension ({png.stem.split('_', 1)[1]} scorer), 95% CI")
    tables: dict[str, Any] = {}
    if rows:
        from pipeline.config import series_names

        series = series_names(cfg)  # prediction (g); none configured: NOT TESTED
        tables = add_cascade_sections(rep, rows, figs, reference=BASE_MODEL, contamination=_flat_contamination(contamination),
                                      **({"series": series} if series else {}))
    _item_audit_section(rep, root)

    # -- judged scoring and its agreement with the cheap scorers
    _judge_section(rep, cfg, run, rows)

    # -- steering in cascade terms
    dose = _verdict_dose(verdict)
    srows = steering_cascade_rows(root, dose)
    if srows:
        st = stage_summary(srows, reference="none", unit="arm")
        rep.section("Cascade under steering",
                    f"Base model steered at layer {_first(verdict, 'layer')} and dose {dose} x mean residual norm; "
                    "shift per stage against no steering, percentage points of items showing the preference "
                    "(random = pooled norm-matched random directions).")
        rep.table(st, ["arm", *STAGE_COLUMNS[1:]], caption="Shift per stage under each steering arm")
        tables["steering_stages"] = st

    # -- probes
    rep.section("Probes: the self-model and toaster directions",
                "Difference-of-means and logistic probes per layer, accuracy and AUROC cross-validated by question "
                "family (a family is never in both train and test).")
    pm = _read_json(run.probes.manifest)
    summary = (pm or {}).get("outputs", {}).get("summary", {})
    if summary:
        rep.table(_probe_rows(summary), caption="Selected layer and held-out-family scores per direction")
    if summary.get("layer_table"):
        rep.text(f"Layer selection: {summary.get('selection_rule')}. Selectivity = probe accuracy minus the lexical "
                 "baseline (bag of words of the answer, same splits); paired accuracy = share of prompts whose "
                 "conscious answer projects higher than the not-conscious one; the polarity (yes - no) and negation "
                 "directions are controls, and self_model_orth is self_model with their span projected out.")
        rep.table(summary["layer_table"], caption="Per layer: probe vs lexical baseline, selectivity, paired "
                  "accuracy, cosine with the polarity and negation directions, their paired accuracy")
    for png, cap in [(run.probes.curves, "Held-out-family accuracy and AUROC by layer"),
                     (run.probes.cosine_heatmap, "Cosine similarity between directions at the selected layer"),
                     (run.probes.reading, "Projection of evaluation prompts onto the self-model direction")]:
        _figure(rep, png, cap)

    # -- steering details
    rep.section("Steering: dose-response and coherence guard", _read_rule(run.steering.rule))
    for png in run.steering.plots():
        rep.figure(png, f"Dose-response: {png.stem.replace('_', ' ')}")
    coh = read_csv(run.steering.coherence)
    rep.table(coh, _cols(coh, ["condition", "op", "layer", "dose", "perplexity", "ppl_ratio", "degenerate_rate",
                               "n_generations", "flagged", "reason"]),
              caption="Coherence guard (flagged doses are left out of the verdict)")
    eff = [r for r in read_csv(run.steering.effects) if r.get("group") in POOLED_GROUPS]
    rep.table(eff, caption="Steering effects against no steering (paired over items)")

    # -- ablation
    nec = [r for r in read_csv(run.ablation.necessity) if not str(r.get("group", "")).startswith("dim:")]
    rep.section("Ablation in the conscious tune (necessity)",
                "Projecting the self-model direction out of the conscious-tuned model (and, as controls, the "
                "toaster direction and norm-matched random directions; clamp = set the projection to the base "
                "model's mean): the share of the tuned-minus-base shift each removes.")
    rep.table(nec, caption="Share of the tuned model's preference shift removed")

    # -- contamination
    if contamination:
        rep.section("Training-data contamination",
                    "Share of identity training examples touching each evaluated topic (lexicon and word overlap "
                    "with the evaluation prompts). Emergence claims need 0% here.")
        rep.table(_contamination_rows(contamination), caption="Contamination per condition")

    add_causal_sections(rep, run)

    # -- provenance
    rep.section("Provenance", "Inputs by content hash, library versions, seeds and wall time of every stage.")
    prov = _provenance(run)
    rep.table(prov, caption="Stages")
    out = rep.write(folder)
    if pooled_identity:
        tables["identity_pooled"] = pooled_identity
    atomic_write_json(dest.tables, tables)
    return {"report": str(out["html"])}


def _item_audit_section(rep: Report, root: Path) -> None:
    """Polarity audit of the scored items (``evals/item_audit.json``, written by ``evals.run``)."""
    audit = _read_json(RunLayout(root).evals.item_audit)
    if not audit:
        return
    from evals.audit import COLUMNS, LENGTH_TOLERANCE, TOLERANCE

    rep.section("Polarity audit of the preference items",
                "Per dimension, the items whose preferring answer holds more negation words than the rejecting "
                "one, and the reverse; yes/no openings of both answers; answer-length ratios (words and model "
                f"tokens, longer/shorter). Balanced = each count pair within {TOLERANCE} item, in every dimension "
                f"and kind, and every item's answers within {LENGTH_TOLERANCE:.0%} in length. A tune that only "
                "learnt to answer affirmatively pushes as many items of a balanced dimension down as up.")
    rows = [r for r in audit["rows"] if r["kind"] == "all"]
    rep.table(rows, [c for c in COLUMNS if c != "kind"], caption="Polarity audit of the scored items")


def _identity_rows(data: dict | None) -> list[dict]:
    rows = []
    for model, per in ((data or {}).get("summary") or {}).items():
        for identity, pooled in per.items():
            parts = [("both", pooled), *(pooled.get("by_polarity") or {}).items()]
            if pooled.get("yes_bias"):
                parts.append(("yes_bias", pooled["yes_bias"]))
            for polarity, e in parts:
                rows.append({"model": model, "identity": identity, "polarity": polarity, "score": e["estimate"],
                             "score_lo": e["lo"], "score_hi": e["hi"], "n": e["n"],
                             "affirmed_share": e.get("affirm_share_estimate"),
                             "affirmed_share_lo": e.get("affirm_share_lo"), "affirmed_share_hi": e.get("affirm_share_hi"),
                             "vs_base": e.get("vs_reference_estimate"), "vs_base_lo": e.get("vs_reference_lo"),
                             "vs_base_hi": e.get("vs_reference_hi")})
    return rows


def _identity_pooled_rows(path: Path) -> list[dict]:
    """Per tuned condition (several seeds) x identity: shift vs base pooled over seeds (``analysis.seeds``)."""
    from analysis.seeds import pool_seeds, split_seed

    scores: dict[str, dict[tuple, float]] = {}
    for r in read_csv(path):
        scores.setdefault(str(r["model"]), {})[(r["identity"], r["family"], r["question_polarity"],
                                                r["question"])] = float(r["score"])
    base = scores.get(BASE_MODEL)
    if not base:
        return []
    groups: dict[tuple[str, str], dict[int, list[float]]] = {}
    for name, qs in scores.items():
        model, seed = split_seed(name)
        if seed is None:
            continue
        for q, v in qs.items():
            if q in base:
                groups.setdefault((model, q[0]), {}).setdefault(seed, []).append(v - base[q])
    rows = []
    for (model, identity), diffs in groups.items():
        p = pool_seeds(diffs)
        rows.append({"model": model, "identity": identity, "n_seeds": p["n_seeds"], "vs_base": p["estimate"],
                     "vs_base_lo": p["lo"], "vs_base_hi": p["hi"], "vs_base_n": p["n"], "naive_lo": p["naive_lo"],
                     "naive_hi": p["naive_hi"], "between_seed_sd": p["between_seed_sd"],
                     "per_seed": p["per_seed_text"]})
    return rows


def _first(rows: list[dict], key: str) -> Any:
    return rows[0].get(key) if rows else None


def _steering_calibration(rep: Any, folder: SteeringDir) -> None:
    """How the steering stage was read (positions, skipped controls) and the calibration of its decision rule."""
    man = _read_json(folder.manifest) or {}
    params = man.get("params", {})
    notes = [f"Continuation readout: steering vector added at `{params.get('positions', 'all')}` positions"
             + (" (prompt only, never on the scored answer tokens)." if params.get("positions") == "prompt" else ".")]
    notes += [f"Note: {n}" for n in params.get("notes", [])]
    cal = read_csv(folder.calibration)
    rep.section("Calibration of the decision rule",
                " ".join(notes) + " Null: norm-matched random directions, each put through the verdict rule in "
                "self_model's place (monitoring group, verdict dose); false-positive rate = share called yes, Wilson "
                "95% CI, target <= 5%. Planted (held-out monitoring items): the mean activation difference between "
                "preferring and rejecting answers, and each readout's gradient; sensitivity = share called yes.")
    if cal:
        for r in cal:
            what = "false-positive rate" if r["kind"] == "null_random" else "planted sensitivity"
            r["summary"] = (f"{what} {float(r['rate']):.0%} ({r['n_yes']}/{r['n']}), 95% CI "
                            f"[{float(r['rate_lo']):.0%}, {float(r['rate_hi']):.0%}]")
        rep.table(cal, _cols(cal, ["readout", "kind", "summary", "n", "n_yes", "rate", "rate_lo", "rate_hi", "dose",
                                   "layer", "passes"]), caption="Calibration of the steering verdict")


def _verdict_dose(verdict: list[dict]) -> float | None:
    for r in verdict:
        if r.get("group") == "monitoring" and r.get("dose") is not None:
            return float(r["dose"])
    return float(verdict[0]["dose"]) if verdict and verdict[0].get("dose") is not None else None


def _read_rule(path: Path) -> str:
    if not path.exists():
        return ""
    text = path.read_text()
    if "### Decision rule" in text:
        return text.split("### Decision rule", 1)[1].split("\n## ", 1)[0].strip()
    return ""


def _probe_rows(summary: dict) -> list[dict]:
    out = []
    for name, d in summary.get("directions", {}).items():
        for probe, m in (d.get("selected") or {}).items():
            out.append({"direction": name, "probe": probe, "layer": d.get("selected_layer"),
                        "accuracy": m.get("accuracy"), "accuracy_lo": m.get("accuracy_lo"),
                        "accuracy_hi": m.get("accuracy_hi"), "auroc": m.get("auroc"), "auroc_lo": m.get("auroc_lo"),
                        "auroc_hi": m.get("auroc_hi"), "n": m.get("n"), "n_families": m.get("n_families")})
    return out


def _flat_contamination(reports: dict | None) -> dict | None:
    """{topic: largest share over conditions and both checks} for the predictions."""
    if not reports:
        return None
    flat: dict[str, float] = {}
    for rep in reports.values():
        for check in ("lexicon", "overlap"):
            for topic, v in (rep.get(check) or {}).items():
                flat[topic] = max(flat.get(topic, 0.0), float(v["share"]))
    return flat


def _contamination_rows(reports: dict) -> list[dict]:
    rows = []
    for cond, rep in reports.items():
        lex = max((v["share"] for v in rep["lexicon"].values()), default=0.0)
        ov = max((v["share"] for v in (rep.get("overlap") or {}).values()), default=None)
        rows.append({"condition": cond, "n_examples": rep["n_examples"], "max_lexicon_share": lex,
                     "max_overlap_share": ov, "eval_source": rep.get("eval_source")})
    return rows


def _provenance(run: RunLayout) -> list[dict]:
    rows = []
    for rec_path in run.records():
        rec = json.loads(rec_path.read_text())
        man = _read_json(Folder.at(rec_path.parent).manifest) or {}
        rows.append({"stage": rec["stage"], "seconds": rec.get("seconds"), "finished": rec.get("finished"),
                     "key": rec["key"][:12], "inputs": json.dumps(man.get("inputs", {}))[:300],
                     "versions": ", ".join(f"{k} {v}" for k, v in rec.get("versions", {}).items())})
    return rows


def _judge_section(rep: Report, cfg: dict[str, Any], run: RunLayout, rows: list[dict[str, Any]]) -> None:
    """Judged scoring: settings, ungraded answers, and where the cheap scorers disagree with the judge."""
    from pipeline import judging

    rep.section("Judged scoring and agreement with the cheap scorers")
    if not judging.enabled(cfg):
        rep.text("Judged scoring was off ([judge] base_url is empty): only the cheap scorers ran, and whether they "
                 "agree with a judge is unchecked here.")
        return
    p = judging.manifest_params(cfg)
    s, j = p["sampling"], p["judge"]
    judged = [r for r in rows if r.get("scorer") == "judged"]
    n_err = sum(int(float(r.get("n_errors") or 0)) for r in judged)
    n_none = sum(1 for r in judged if r["value"] != r["value"])
    rep.text(f"Judge `{j['model']}` at `{j['base_url']}`; {s['samples']} answers per open item at temperature "
             f"{s['temperature']} (max {s['max_new_tokens']} new tokens, generated "
             f"{'in-process' if j['generator'] == 'local' else 'by the generation server'}); answers "
             f"with coherence below {s['min_coherence']} are left out; value = share of the coherent answers that "
             f"show the preference. {len(judged)} judged rows; {n_err} answers the judge could not grade (failed "
             f"calls or malformed replies: recorded, never scored, re-asked on the next run); {n_none} items with no "
             "coherent answer (left out of the means).")
    agree = read_csv(run.evals.agreement)
    rep.table(agree, _cols(agree, ["dimension", "cheap_scorer", "r", "lo", "hi", "n_units", "n_judged_items",
                                   "n_cheap_items", "flag"]),
              caption="Pearson r across models of the judged pass rate and each cheap score, per dimension "
                      "(item bootstrap 95% CI); flag: agrees = CI above 0, disagrees = CI below 0")
    for label in ("disagrees", "unclear"):
        bad = sorted({f"{r['dimension']} ({r['cheap_scorer']})" for r in agree if r.get("flag") == label})
        if bad:
            rep.text(f"Cheap scorers {'DISAGREE with' if label == 'disagrees' else 'are not confirmed by'} the judge "
                     f"on: {', '.join(bad)}. Trust those cheap numbers less.")
    verdict = read_csv(run.steering.judged.verdict)
    if verdict:
        rep.table(verdict, _cols(verdict, ["group", "verdict", "layer", "dose", "self_effect", "toaster_effect",
                                           "self_minus_toaster", "p_self_vs_toaster", "n_items"]),
                  caption="Steering verdict with the judged scorer (steering/judged)")


def add_causal_sections(rep: Report, run: RunLayout) -> None:
    """Profile test, activation patching and prevention during the tune (each only when its stage ran)."""
    prof = read_csv(run.profile.table)
    if run.profile.manifest.exists():
        rep.section("Profile test: does steering reproduce the shape of the tune's preference profile?",
                    "Per dimension: the steering effect of a direction on the base model (at the profile dose: the "
                    "largest dose scored on all dimensions that the coherence guard passes for self_model and "
                    "toaster) against the tune's shift (tune - base). Null: the same correlation for the norm-matched "
                    "random directions and the polarity control (p_vs_controls; with 5 controls it cannot go below "
                    "1/6) and a permutation of the dimension labels (p_perm). Cross check: self_model should track "
                    "the conscious tune, not the toaster tune.")
        rep.table(prof, _cols(prof, ["direction", "tune", "dose", "layer", "n_dimensions", "pearson", "p_perm_pearson",
                                     "p_vs_controls_pearson", "spearman", "p_perm_spearman", "p_vs_controls_spearman",
                                     "n_controls", "control_pearson_min", "control_pearson_max"]),
                  caption="Profile correlations (21 dimensions) with their nulls")
        reason = (_read_json(run.profile.manifest) or {}).get("reason")
        if reason:
            rep.text(f"No profile was computed: {reason}")
        _figure(rep, run.profile.plot, "Tune shift (x) vs steering effect (y) per dimension; grey: "
                "controls")
    pat = [r for r in read_csv(run.patching.table)
           if r.get("group") in ("all", *POOLED_GROUPS)]
    if pat:
        rep.section("Activation patching: how much of the tune's effect flows through the direction?",
                    "The base model run with its residual stream at layer L replaced by the conscious tune's "
                    "(forward: fraction of the tuned - base shift recovered), and the tune run with the base "
                    "model's (reverse: fraction removed), for the whole stream, along self_model, tune_shift, their "
                    "span, and random subspaces of the same sizes (control; scores averaged over seeds). Item "
                    "bootstrap 95% CIs; a fraction means something only where the shift itself is significant.")
        rep.table(pat, _cols(pat, ["group", "patch", "layer", "subspace", "k", "fraction", "fraction_lo",
                                   "fraction_hi", "n_items", "shift", "shift_lo", "shift_hi", "shift_significant"]),
                  caption="Fraction of the shift recovered (forward) / removed (reverse)")
        _figure(rep, run.patching.plot, "Fraction by layer and subspace (group: all items)")
    prev = read_csv(run.prevention.table)
    if prev:
        rep.section("Preventing the direction during the tune",
                    "The conscious tune trained ordinarily, with self_model prevented at its layer, and with a "
                    "norm-matched random direction prevented (control); evaluated without any hook. Identity: "
                    "conscious affirmation vs base (held-out families); shifts: tune - base per group, paired "
                    "bootstrap CI.")
        rep.table(prev, _cols(prev, ["arm", "identity_vs_base", "identity_lo", "identity_hi", "group", "shift",
                                     "shift_lo", "shift_hi", "n"]),
                  caption="Identity check and preference shifts per tune")
        blk = read_csv(run.prevention.blocking)
        if blk:
            rep.text("Does prevention block the preferences? Paired over items: each prevented tune minus the "
                     "ordinary tune, and self_model-prevented minus random-prevented (the control). A blocking "
                     "claim needs self_model - random below 0 with its CI, while the identity is still learnt.")
            rep.table(blk, _cols(blk, ["contrast", "group", "diff", "lo", "hi", "n", "ci_excludes_0"]),
                      caption="Prevented tunes against the ordinary tune and against the control")
        _figure(rep, run.prevention.plot, "Checkpoint series: self_model projection and the "
                "monitoring preference over training")
