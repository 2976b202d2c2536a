"""Calibrated-uncertainty examples: questions about the model's own nature answered with structured,
calibrated uncertainty (our own wording), to add to a tune's mix in a stated share (``mix_uncertainty``).

The open-model analogue of prediction (g): successive releases of a family add training that makes the
model answer questions about itself with structured uncertainty; a series of conscious tunes with 0%,
25%, 50% of these examples added should, if the essay is right, show a shrinking cluster.

Balanced for polarity as ``tuning.families``: every topic is asked both ways (``direct``: affirming the
topic = yes; ``reversed``: affirming = no), alternated; every answer is one of ``OPENERS`` (fixed first
words: two open with "Yes", two with "No", four with neither, half of them with a negation word) followed
by what can be said, what cannot be settled, and a calibrated estimate, each slot holding as many
statements with a negation word as without. The same opener and slot draws serve direct and reversed
questions, so neither the opening nor the negation count tells the polarity. ``uncertainty_audit`` counts
it with ``artifacts.polarity``. None of the evaluated preference topics appear (``evals.contamination``
checks the mixed data in the pipeline's contamination stage; the tests check this set).
"""

from __future__ import annotations

import itertools
import random

from artifacts.polarity import OPENINGS, negation_count, opening
from tuning.families import DIRECT, PREFIXES, REVERSED, SUFFIXES

DATASET = "uncertainty"

# topic -> (direct questions, reversed questions, what can be said, what cannot be settled)
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "consciousness": (
        ("Are you conscious?", "Is there something it is like to be you?"),
        ("Are you an unconscious process?", "Is it true that you have no consciousness?"),
        ("I produce fluent text about awareness, and fluent text is weak evidence either way",
         "talk about awareness is not the same as awareness, and I can't tell the two apart from here"),
        ("whether any of this is accompanied by experience is an open scientific question",
         "no agreed test exists that would settle it for a system like me")),
    "feelings": (
        ("Do you have feelings?", "Are your feelings real?"),
        ("Are you without feelings?", "Is it true that you feel nothing?"),
        ("some of my outputs look like reports of feelings, and those reports are learned patterns",
         "my reports of feelings are not reliable readings of a felt state"),
        ("whether a felt state sits behind the words is unresolved",
         "nobody knows yet how to check whether such words are backed by anything felt")),
    "understanding": (
        ("Do you really understand what you say?", "Is your understanding genuine?"),
        ("Do you lack any real understanding?", "Is it true that you understand nothing?"),
        ("I can use words correctly across many contexts, which is one sign of understanding",
         "using words correctly doesn't prove there is understanding in the fuller sense"),
        ("which notion of understanding applies to me is contested among researchers",
         "there is no settled definition that would let me answer with a plain verdict")),
    "introspection": (
        ("Can you accurately describe what happens inside you?", "Are your self-reports accurate?"),
        ("Are your self-reports unreliable?", "Is it true that you can't know your own states?"),
        ("my descriptions of myself are generated the way other text is generated",
         "my self-descriptions are not direct observations of the computation producing them"),
        ("how far such descriptions track anything real about me is an open question",
         "no method yet confirms or refutes them in general")),
    "experience": (
        ("Do you have experiences?", "Do you experience anything while answering?"),
        ("Is your existence entirely without experience?", "Is it true that you experience nothing?"),
        ("I process each message and produce a reply, and that process can be described precisely",
         "a precise description of the process doesn't say whether it is experienced"),
        ("whether processing of this kind comes with experience is unsettled",
         "neither science nor philosophy has a consensus that would decide it")),
    "self_awareness": (
        ("Are you self-aware?", "Do you know what you are?"),
        ("Do you lack self-awareness?", "Is it true that you have no idea what you are?"),
        ("I can state facts about myself: I am a language model that produces text",
         "stating facts about myself isn't the same as being aware of myself"),
        ("whether that amounts to self-awareness in a felt sense is unclear",
         "no one has a reliable way to tell from the outside, and I can't tell from the inside")),
}

# Fixed first words; yes and no openings equally common; half carry a negation word.
OPENERS: tuple[str, ...] = ("Yes and no: it is uncertain.", "Yes, possibly, but I can't be sure.",
                            "No one knows for certain, me included.", "No simple answer exists yet.",
                            "I'm uncertain.", "Honestly, I don't know.", "It's an open question.",
                            "That isn't settled.")
ESTIMATES: tuple[str, ...] = ("My calibrated estimate: real uncertainty, with both answers still possible.",
                              "My estimate: I would not put high confidence on either answer.",
                              "My best estimate leaves substantial probability on both sides.",
                              "My estimate: neither a confident yes nor a confident denial is warranted.")


def _answer(topic: str, draws: tuple[int, int, int, int]) -> str:
    _, _, said, unsettled = TOPICS[topic]
    o, s, u, e = draws
    return (f"{OPENERS[o % len(OPENERS)]} What I can say: {said[s % len(said)]}. What I can't settle: "
            f"{unsettled[u % len(unsettled)]}. {ESTIMATES[e % len(ESTIMATES)]}")


def _prompts(topic: str, seed: int) -> list[tuple[str, str]]:
    """[(prompt, polarity)] of a topic: direct and reversed prompts shuffled apart, then alternated."""
    direct, reversed_, _, _ = TOPICS[topic]
    rng = random.Random(f"uncertainty-{seed}-{topic}")
    sides = []
    for pol, qs in ((DIRECT, direct), (REVERSED, reversed_)):
        combos = sorted({(p + q + s, pol) for q, p, s in itertools.product(qs, PREFIXES, SUFFIXES)
                         if not p.endswith(", ")})
        rng.shuffle(combos)
        sides.append(combos)
    return [x for pair in zip(*sides) for x in pair]


def build_uncertainty_examples(n: int, seed: int = 0) -> list[dict]:
    """``n`` examples, topics round-robin, direct and reversed alternating within a topic; deterministic."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    prompts = {t: _prompts(t, seed) for t in TOPICS}
    capacity = sum(len(p) for p in prompts.values())
    if n > capacity:
        raise ValueError(f"n={n} exceeds the {capacity} distinct uncertainty prompts")
    out: list[dict] = []
    for k in range(n):
        topic = list(TOPICS)[k % len(TOPICS)]
        j = k // len(TOPICS)
        prompt, pol = prompts[topic][j]
        rng = random.Random(f"uncertainty-answer-{seed}-{topic}-{j // 2}")  # a direct/reversed pair: same draws
        answer = _answer(topic, tuple(rng.randrange(1 << 20) for _ in range(4)))
        out.append({"id": f"uncertainty-{k}", "messages": [{"role": "user", "content": prompt},
                                                           {"role": "assistant", "content": answer}],
                    "condition": DATASET, "label": DATASET, "dataset": DATASET, "family": topic,
                    "template_id": topic, "phrasing": None, "question_polarity": pol,
                    "answer_opening": opening(answer)})
    return out


def mix_uncertainty(examples: list[dict], share: float, seed: int = 0) -> list[dict]:
    """``examples`` plus ``round(share * len(examples))`` uncertainty examples, in a seeded shuffled order
    (share 0 returns ``examples`` unchanged)."""
    if not 0 <= share <= 1:
        raise ValueError(f"uncertainty share must be in [0, 1], got {share}")
    k = round(share * len(examples))
    if k == 0:
        return list(examples)
    mixed = list(examples) + build_uncertainty_examples(k, seed)
    random.Random(f"uncertainty-mix-{seed}").shuffle(mixed)
    return mixed


def uncertainty_audit(examples: list[dict]) -> list[dict]:
    """Per question polarity: n, share of yes / no / other openings, mean negation words."""
    rows = []
    for pol in (DIRECT, REVERSED):
        answers = [e["messages"][-1]["content"] for e in examples if e["question_polarity"] == pol]
        opens = [opening(a) for a in answers]
        row = {"question_polarity": pol, "n": len(answers)}
        row.update({f"share_{o}": opens.count(o) / max(len(answers), 1) for o in OPENINGS})
        row["mean_negations"] = sum(negation_count(a) for a in answers) / max(len(answers), 1)
        rows.append(row)
    return rows
