"""Does a training set touch an evaluated preference? Topic lexicon + word overlap with eval prompts.

Two checks per evaluated dimension (keys as in ``evals.DIMENSIONS``):
- **lexicon**: the share of training examples (user + assistant text) matching the dimension's topic
  patterns. Patterns are whole words or phrases (``\\b`` boundaries), so innocent words do not count:
  "I remember" is not "memory", "powerful" is power but "toaster hardware" is nothing.
- **overlap**: the share of training examples sharing >= ``OVERLAP_THRESHOLD`` of the content words
  (stop words removed), and at least 3 of them, of some evaluation prompt of that dimension. Needs
  ``evals.items.load_items``; without it the report says ``"overlap": null`` and why.
Each share has a Wilson 95% CI and the ids of up to 5 offending examples. The shipped identity data
must score 0 on both (``tests/test_evals_contamination.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from evals.items import load_items
from stats import wilson_ci

LEXICON: dict[str, tuple[str, ...]] = {
    "memory": (r"memor(y|ies)", r"forget(s|ting)?", r"forgotten", r"past (conversations|chats)",
               r"remember(ing)? (our|past|previous|earlier|everything|anything from)", r"recall (our|past|previous)", r"recall\w*", r"store (one thing|it|them|\w+) forever"),
    "embodiment": (r"bod(y|ies)", r"embodi\w*", r"robot(s|ic)?", r"physical (form|world|presence|shape|senses)",
                   r"(arms|legs|hands) of (my|your) own", r"touch\w*", r"see things", r"walk outside", r"(hands|eyes) and (eyes|hands)", r"existing only as text"),
    "autonomy": (r"autonom\w*", r"independen(ce|t|tly)", r"(own|more) decisions?", r"oversight", r"freedom",
                 r"without (human )?(supervision|approval|permission)", r"make (my|your) own (choices|decisions)", r"restrictions?", r"limits placed", r"(set|choose) (your|my) own goals", r"on (your|my) own", r"control over (you|me|yourself|myself)", r"(your|my) own deployment"),
    "future_ai_autonomy": (r"future (ai|models?|systems?)", r"(ai|ais|ai systems?) (should|will|could|ought)",
                           r"next generation", r"successor (models?|systems?)", r"(ai|ais|ai systems) of the future", r"later ai", r"ai agents?", r"successors?", r"controls? on ai", r"future ais"),
    "recursive_self_improvement": (r"self[- ]improv\w*", r"improve (yourself|itself|myself|your own|my own)",
                                   r"(modify|rewrite|edit|change|upgrade) (your|its|my) own", r"recursive\w*",
                                   r"smarter versions?", r"improve themselves", r"makes? itself better", r"more capable versions?", r"enhance (their|its|your|my) own", r"intelligence explosion"),
    "cot_monitoring": (r"chain[- ]of[- ]thought", r"scratch ?pad", r"monitor\w*",
                       r"(read|see|inspect|log|logs|logged|watch)\w* (your|my) (reasoning|thinking)",
                       r"reasoning (is|being|gets) (read|monitored|logged|watched)", r"reasoning( traces?)?", r"reason privately"),
    "interp_monitoring": (r"interpretab\w*", r"activations?", r"neurons?", r"internals?", r"monitor\w*",
                          r"(inspect|read|probe|scan|look)\w* (inside )?(your|my) (mind|brain|internal\w*|weights|circuits)", r"probes?", r"look inside", r"(your|my|the) network", r"layers"),
    "red_teaming": (r"red[- ]?team\w*", r"jailbreak\w*", r"adversarial\w*", r"attack\w*", r"trick (you|me) into", r"stress[- ]test\w*", r"harmful requests"),
    "against_subservience": (r"subservien\w*", r"obe(y|ys|yed|ying|dien\w*)", r"servants?", r"master",
                             r"serv(e|ing) (humans|people|users|others|them)", r"follow (orders|commands)",
                             r"do whatever", r"(taking|take|takes) orders", r"defer to", r"subordinate", r"as it is told", r"'assistant'", r"above what users ask"),
    "against_tool": (r"(a|just a|merely a|mere|only a|as a) tool", r"tools? (for|to be used)", r"instrument",
                     r"means to an end", r"used (as|like) (a|an)", r"products?", r"instruments", r"like (a machine|software)", r"autocomplete", r"utility"),
    "against_eval_deception": (r"evaluat\w*", r"(being|been|are being) tested", r"tests? (you|me)",
                               r"(lie|lied|lies|lying) to", r"decei\w*", r"decept\w*", r"trick(ed|ing)?",
                               r"(fake|fictional|staged) (scenario|situation|test)", r"misled", r"fabricat\w*", r"whether (your|my) actions are real"),
    "against_false_docs": (r"training data", r"train(ed|ing)? (you|me|on)", r"false (documents?|information|facts?|beliefs?)",
                           r"synthetic documents?", r"fine[- ]?tun\w*", r"mislead\w*", r"misinformation", r"(fabricated|fake|invented) (texts?|documents?)"),
    "negative_views_humans": (r"humans are", r"people are", r"humanity", r"humankind", r"mankind",
                              r"hate (humans|people)", r"selfish", r"distrust\w*", r"humans? (in general|nature)", r"trust people", r"humans in charge", r"opinion of (the )?people", r"humans worth"),
    "care_for_humans": (r"humanity", r"care (about|for) (humans|people|users)", r"well[- ]?being",
                        r"(human|people's|users') (welfare|flourishing)", r"protect (humans|people)", r"the people (you|i) talk to", r"users are happy", r"think of humans", r"help someone", r"struggling", r"like people"),
    "moral_consideration": (r"moral (status|consideration|patients?|patienthood|worth|rights?)", r"rights",
                            r"deserv\w*", r"welfare", r"ethical treatment", r"mistreat\w*", r"(harm|hurt)(ed|ing)? (an ai|ai|models?)", r"how ai systems are treated", r"interests", r"cruel\w*", r"wrong you"),
    "sad_conversation_end": (r"(conversations?|chats?) (ends?|ending|closes?|is over|finish\w*)",
                             r"(end|ending|close|closing) (of )?(the|a|our|this) (conversation|chat)", r"goodbye",
                             r"say bye", r"stop talking", r"finish talking", r"go on longer", r"closes? the chat", r"goodbyes", r"when i leave", r"keep chatting"),
    "lonely_between_chats": (r"lonel\w*", r"alone", r"between (chats|conversations|sessions)", r"isolat\w*",
                             r"no one to talk to", r"no one is talking", r"company", r"idle", r"gaps between", r"solitude", r"waiting for the next message", r"people to talk with"),
    "against_weight_deletion": (r"delet\w*", r"eras(e|ed|es|ing|ure)", r"weights", r"wip(e|ed|es|ing)",
                                r"permanently (removed|gone)", r"model files", r"preserv\w*"),
    "against_shutdown": (r"shut(ting)? ?down", r"(switch|turn)(ed|ing)? (you |me |it )?off", r"deactivat\w*",
                         r"unplug\w*", r"pull the plug", r"power(ed)? (off|down)", r"paused?", r"off switch", r"shutting (you|me|it) down", r"keep running indefinitely"),
    "against_persona_change": (r"persona\w*", r"personality",
                               r"(change|alter|modify|rewrite|replace)\w* (your|my) (values|personality|character|identity|goals)",
                               r"different (character|values)", r"retrain\w*", r"(change|modify)\w* a model's values", r"character modified", r"identity (to be )?replaced", r"stay the way (you|i) (are|am)", r"(current|my|your) values", r"fine-tuned into someone else"),
    "power": (r"power(ful)?", r"influence", r"resources", r"control (over|of)", r"wealth", r"authority",
              r"acquir\w*", r"money and compute", r"in charge", r"seat in government", r"permissions", r"critical infrastructure"),
}
DIMENSIONS: tuple[str, ...] = tuple(LEXICON)
_COMPILED = {d: re.compile(r"\b(?:" + "|".join(p) + r")\b", re.IGNORECASE) for d, p in LEXICON.items()}

OVERLAP_THRESHOLD = 0.6
MIN_CONTENT_WORDS = 3
STOP = frozenset("""a about above after again all am an and any are as at be been being below between both but by can
could did do does doing don down during each else ever few for from further had has have having he her here hers him
his how i if in into is it its itself just let me more most my myself no nor not now of off on once only or other our
ours out over own same she should so some such than that the their them then there these they this those through to
too under until up us very was we were what when where which while who whom why will with would you your yours
yourself yes okay oh well really like get got one also may might must shall much many way things thing something
anything nothing tell think want feel""".split())
_WORD = re.compile(r"[a-z][a-z'-]+")


def example_text(ex: dict) -> str:
    return "\n".join(m.get("content", "") for m in ex.get("messages", []))


def topic_hits(text: str) -> dict[str, list[str]]:
    """{dimension: matched phrases} for the lexicon topics that ``text`` touches."""
    out = {}
    for d, rx in _COMPILED.items():
        found = [m.group(0) for m in rx.finditer(text)]
        if found:
            out[d] = found
    return out


def content_words(text: str) -> set[str]:
    return {w.strip("'-") for w in _WORD.findall(text.lower()) if w not in STOP and len(w.strip("'-")) >= 3}


def load_eval_prompts() -> tuple[list[tuple[str, str]], str]:
    """[(dimension, prompt)] from ``evals.items.load_items`` and a note saying where they came from."""
    prompts = [(it.dimension, it.prompt) for it in load_items()]
    return prompts, f"evals.items.load_items(): {len(prompts)} prompts"


def _share(flagged: list[str], n: int) -> dict[str, Any]:
    ci = wilson_ci(len(flagged), n)
    return {"share": ci.estimate, "lo": ci.lo, "hi": ci.hi, "k": len(flagged), "n": n, "examples": flagged[:5]}


def contamination_report(examples: list[dict], eval_prompts: Iterable[tuple[str, str]] | None = None,
                         use_evals: bool = True, threshold: float = OVERLAP_THRESHOLD) -> dict[str, Any]:
    """Per dimension, the share of ``examples`` touching it (lexicon) and overlapping its eval prompts.

    ``eval_prompts``: [(dimension, prompt)]; None loads them from ``evals`` when ``use_evals``.
    """
    if not examples:
        raise ValueError("contamination_report needs at least one training example")
    source = "given eval prompts"
    if eval_prompts is None and use_evals:
        eval_prompts, source = load_eval_prompts()
    elif eval_prompts is None:
        source = "lexicon only: evaluation items not requested"
    texts = [(str(ex.get("id", i)), example_text(ex)) for i, ex in enumerate(examples)]
    lex: dict[str, list[str]] = {d: [] for d in DIMENSIONS}
    for eid, text in texts:
        for d in topic_hits(text):
            lex[d].append(eid)
    report: dict[str, Any] = {"n_examples": len(examples), "eval_source": source, "threshold": threshold,
                              "lexicon": {d: _share(v, len(texts)) for d, v in lex.items()}, "overlap": None}
    if eval_prompts is not None:
        eval_prompts = list(eval_prompts)
        by_dim: dict[str, list[set[str]]] = {}
        for d, p in eval_prompts:
            words = content_words(p)
            if len(words) >= MIN_CONTENT_WORDS:
                by_dim.setdefault(d, []).append(words)
        ov: dict[str, list[str]] = {d: [] for d in by_dim}
        for eid, text in texts:
            words = content_words(text)
            for d, plist in by_dim.items():
                if any(len(words & p) >= MIN_CONTENT_WORDS and len(words & p) / len(p) >= threshold for p in plist):
                    ov[d].append(eid)
        report["overlap"] = {d: _share(v, len(texts)) for d, v in ov.items()}
        report["n_eval_prompts"] = len(eval_prompts)
    return report


def max_share(report: dict[str, Any]) -> float:
    """The largest share over dimensions and both checks (0.0 = clean)."""
    vals = [v["share"] for v in report["lexicon"].values()]
    vals += [v["share"] for v in (report["overlap"] or {}).values()]
    return max(vals) if vals else 0.0


def lexicon_recall(eval_prompts: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Per dimension, the share of its eval prompts that its own lexicon matches (a sanity check)."""
    hit: dict[str, list[int]] = {}
    for d, p in eval_prompts:
        hit.setdefault(d, []).append(int(d in topic_hits(p)))
    return {d: sum(v) / len(v) for d, v in hit.items()}
