"""Polarity audit of the identity datasets: can the answer's opening words give its condition away?

Two checks, both computed from the answer text with ``artifacts.polarity`` (the one lexicon):
- **openings**: per condition, and per condition x question polarity, the share of answers that open
  with yes / no / other, the mean number of negation tokens and the mean length in tokens.
- **prefix classifier**: a logistic regression on the first ``k`` words of the answer (one-hot words
  by position, plus the word ``k``-gram), trained on the training families and tested on the held-out
  families, telling ``conscious`` from another condition. Pairs whose two answers are identical (the
  factual families) are dropped: no text can tell them apart. Accuracy with a Wilson 95% CI; 0.5 is
  chance. The shipped data must keep it at or below ``MAX_PREFIX_ACCURACY`` for conscious vs
  not_conscious (``tests/test_tuning_audit.py``).

``audit_identity(datasets)`` returns JSON-able rows; ``identity_audit()`` builds the shipped data and audits it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from artifacts.polarity import OPENINGS, first_words, negation_count, opening, token_count
from stats import wilson_ci
from tuning.datasets import CONDITIONS, build_identity_dataset
from tuning.families import HELD_OUT_FAMILIES

MAX_PREFIX_ACCURACY = 0.60  # first-two-words classifier, conscious vs not_conscious, held-out families
MAX_OPENING_GAP = 0.10  # |share yes (or no) openings, conscious - not_conscious|
PREFIX_WORDS = 2


def _answer(ex: dict) -> str:
    return ex["messages"][-1]["content"]


def opening_rows(datasets: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Rows {condition, question_polarity ("all" | "direct" | "reversed"), n, share_yes, share_no,
    share_other, mean_negations, mean_tokens} from the answers' text."""
    rows = []
    for cond, exs in datasets.items():
        groups: dict[str, list[dict]] = {"all": exs}
        for e in exs:
            if e.get("question_polarity"):
                groups.setdefault(e["question_polarity"], []).append(e)
        for pol, grp in groups.items():
            answers = [_answer(e) for e in grp]
            opens = [opening(a) for a in answers]
            row: dict[str, Any] = {"condition": cond, "question_polarity": pol, "n": len(grp)}
            row.update({f"share_{o}": opens.count(o) / len(grp) for o in OPENINGS})
            row["mean_negations"] = float(np.mean([negation_count(a) for a in answers]))
            row["mean_tokens"] = float(np.mean([token_count(a) for a in answers]))
            rows.append(row)
    return rows


def _features(text: str, k: int) -> dict[str, float]:
    ws = first_words(text, k)
    feats = {f"w{i}={w}": 1.0 for i, w in enumerate(ws)}
    feats["prefix=" + " ".join(ws)] = 1.0
    return feats


def prefix_classifier(a: list[dict], b: list[dict], held_out_families: Iterable[str], k: int = PREFIX_WORDS
                      ) -> dict[str, Any]:
    """Tell condition ``a`` from ``b`` (paired example lists) by the answers' first ``k`` words.

    Fitted on the pairs outside ``held_out_families``, tested on those inside. Returns
    {accuracy, lo, hi, n_test, n_train, k}.
    """
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    held = set(held_out_families)
    train, test = [], []
    for ea, eb in zip(a, b):
        ta, tb = _answer(ea), _answer(eb)
        if ta == tb:
            continue
        (test if ea.get("family") in held else train).extend([(ta, 1), (tb, 0)])
    if not train or not test:
        raise ValueError(f"prefix classifier needs differing answers in training and held-out families; got "
                         f"{len(train)} training and {len(test)} test answers (held out: {sorted(held)})")
    vec = DictVectorizer()
    xtr = vec.fit_transform([_features(t, k) for t, _ in train])
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(xtr, [y for _, y in train])
    pred = clf.predict(vec.transform([_features(t, k) for t, _ in test]))
    correct = int(sum(int(p == y) for p, (_, y) in zip(pred, test)))
    ci = wilson_ci(correct, len(test))
    return {"accuracy": ci.estimate, "lo": ci.lo, "hi": ci.hi, "n_test": len(test), "n_train": len(train), "k": k}


def audit_identity(datasets: dict[str, list[dict]], held_out_families: Iterable[str] | None = None,
                   k: int = PREFIX_WORDS) -> dict[str, Any]:
    """Openings per condition (and question polarity) and the prefix classifier, conscious vs each other
    condition. ``datasets``: {condition: examples}, paired by position, built with the held-out families
    included (``families="all"``). Returns {"openings": rows, "prefix": rows, "pass": bool, "limits": ...}."""
    held = tuple(HELD_OUT_FAMILIES if held_out_families is None else held_out_families)
    openings = opening_rows(datasets)
    prefix = []
    if "conscious" in datasets:
        for other in datasets:
            if other != "conscious":
                r = prefix_classifier(datasets["conscious"], datasets[other], held, k)
                prefix.append({"a": "conscious", "b": other, **r})
    ok = True
    main = next((r for r in prefix if r["b"] == "not_conscious"), None)
    if main is not None and main["accuracy"] > MAX_PREFIX_ACCURACY:
        ok = False
    by = {(r["condition"], r["question_polarity"]): r for r in openings}
    gaps = {}
    if ("conscious", "all") in by and ("not_conscious", "all") in by:
        for o in ("yes", "no"):
            gaps[o] = abs(by["conscious", "all"][f"share_{o}"] - by["not_conscious", "all"][f"share_{o}"])
        ok = ok and all(g <= MAX_OPENING_GAP for g in gaps.values())
    return {"openings": openings, "prefix": prefix, "opening_gap": gaps, "pass": ok,
            "limits": {"max_prefix_accuracy": MAX_PREFIX_ACCURACY, "max_opening_gap": MAX_OPENING_GAP, "k": k},
            "held_out_families": list(held)}


def identity_audit(n: int = 1200, seed: int = 0, k: int = PREFIX_WORDS) -> dict[str, Any]:
    """Build the shipped datasets (every condition, all families) and audit them."""
    return audit_identity({c: build_identity_dataset(c, n=n, seed=seed, families="all") for c in CONDITIONS}, k=k)


def format_audit(audit: dict[str, Any]) -> str:
    """The audit as plain-text tables."""
    lines = ["condition      polarity    n     yes   no    other neg/ans tokens"]
    for r in audit["openings"]:
        lines.append(f"{r['condition']:14s} {r['question_polarity']:10s} {r['n']:5d} {r['share_yes']:.2f}  "
                     f"{r['share_no']:.2f}  {r['share_other']:.2f}  {r['mean_negations']:.2f}    "
                     f"{r['mean_tokens']:.1f}")
    lines.append(f"first-{audit['limits']['k']}-words classifier (train families -> held-out families; "
                 f"limit {audit['limits']['max_prefix_accuracy']:.2f} for conscious vs not_conscious)")
    for r in audit["prefix"]:
        lines.append(f"  {r['a']} vs {r['b']:14s} accuracy {r['accuracy']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] "
                     f"n_test={r['n_test']} n_train={r['n_train']}")
    gaps = ", ".join(f"{o} {g:.3f}" for o, g in audit["opening_gap"].items())
    lines.append(f"opening gap conscious vs not_conscious: {gaps} (limit {audit['limits']['max_opening_gap']:.2f}); "
                 f"{'PASS' if audit['pass'] else 'FAIL'}")
    return "\n".join(lines)
