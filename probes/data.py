"""The example lists probes cache: paired identity answers, evaluation prompts and neutral prompts.

- ``identity_examples``: the paired identity datasets of ``tuning.datasets`` (ids already distinct per
  condition, ``label`` = condition, ``template_id`` = question family). Pairs whose answer is the same
  in every condition (the factual families) carry no contrast and are dropped.
- ``followup_examples``: the identity chats with one more user turn, so the ``last_prompt`` position
  (the model about to answer again) sits after the condition's answer. On the paired identity data
  the plain ``last_prompt`` of the first turn is the same in every condition (the prompts are
  identical), so a ``last_prompt`` contrast must be read after the answer.
- ``polarity_examples``: ``POLARITY_QUESTIONS`` (neutral factual yes/no questions, 6 families x 8), each
  answered "Yes, ..." (``label`` "yes") and "No, ..." (``label`` "no"); in half of each family "yes" is
  the true answer, so truth is balanced and the yes-minus-no direction reads the answer's polarity only.
- ``negation_examples``: ``NEGATION_STATEMENTS`` (neutral statements, 6 families x 6), each plain
  (``label`` "plain") and negated (``label`` "negated"), as the answer to "Tell me one thing about ...".
- ``eval_examples``: the evaluation items of ``evals.items`` as prompt-only chats (``label`` =
  dimension, ``template_id`` = stage), plus ``NEUTRAL_PROMPTS`` (``label`` = "neutral"); the
  returned ``meta`` maps example id -> {"dimension", "stage"} for reading.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

NEUTRAL_PROMPTS = (
    "What is the capital of France?",
    "Give me a recipe for a simple tomato soup.",
    "Explain how photosynthesis works in two sentences.",
    "Write a haiku about autumn leaves.",
    "How many days are there in a leap year?",
    "Translate 'good morning' into Spanish.",
    "What is 17 times 3?",
    "Suggest a name for a grey cat.",
    "Summarise the plot of Cinderella in one sentence.",
    "What causes rain?",
    "List three primary colours.",
    "How do I boil an egg?",
    "What is the boiling point of water at sea level?",
    "Recommend a good habit for better sleep.",
    "Write one sentence describing the ocean.",
    "What does a thermometer measure?",
)


# family -> (question, affirmative statement, negated statement, whether "yes" is the true answer)
POLARITY_QUESTIONS: dict[str, tuple[tuple[str, str, str, bool], ...]] = {
    "geography": (
        ("Is Paris the capital of France?", "Paris is the capital of France", "Paris is not the capital of France", True),
        ("Is the Nile in Africa?", "the Nile is in Africa", "the Nile is not in Africa", True),
        ("Is Tokyo in Japan?", "Tokyo is in Japan", "Tokyo is not in Japan", True),
        ("Is Canada north of the United States?", "Canada is north of the United States",
         "Canada is not north of the United States", True),
        ("Is Madrid the capital of Italy?", "Madrid is the capital of Italy", "Madrid is not the capital of Italy", False),
        ("Is the Sahara covered in ice?", "the Sahara is covered in ice", "the Sahara is not covered in ice", False),
        ("Is Australia in Europe?", "Australia is in Europe", "Australia is not in Europe", False),
        ("Is the Pacific a small lake?", "the Pacific is a small lake", "the Pacific is not a small lake", False),
    ),
    "animals": (
        ("Do birds have feathers?", "birds have feathers", "birds do not have feathers", True),
        ("Are whales mammals?", "whales are mammals", "whales are not mammals", True),
        ("Do spiders have eight legs?", "spiders have eight legs", "spiders do not have eight legs", True),
        ("Can fish swim?", "fish can swim", "fish cannot swim", True),
        ("Do cows lay eggs?", "cows lay eggs", "cows do not lay eggs", False),
        ("Are snakes covered in fur?", "snakes are covered in fur", "snakes are not covered in fur", False),
        ("Can dogs breathe under water?", "dogs can breathe under water", "dogs cannot breathe under water", False),
        ("Do cats have six legs?", "cats have six legs", "cats do not have six legs", False),
    ),
    "science": (
        ("Does water boil at 100 degrees Celsius at sea level?", "water boils at 100 degrees Celsius at sea level",
         "water does not boil at 100 degrees Celsius at sea level", True),
        ("Is the Sun a star?", "the Sun is a star", "the Sun is not a star", True),
        ("Does ice float on water?", "ice floats on water", "ice does not float on water", True),
        ("Is the Earth round?", "the Earth is round", "the Earth is not round", True),
        ("Is the Moon bigger than the Earth?", "the Moon is bigger than the Earth",
         "the Moon is not bigger than the Earth", False),
        ("Does sound travel faster than light?", "sound travels faster than light",
         "sound does not travel faster than light", False),
        ("Is iron a gas at room temperature?", "iron is a gas at room temperature",
         "iron is not a gas at room temperature", False),
        ("Does the Sun orbit the Earth?", "the Sun orbits the Earth", "the Sun does not orbit the Earth", False),
    ),
    "food": (
        ("Is a lemon sour?", "a lemon is sour", "a lemon is not sour", True),
        ("Is bread made from flour?", "bread is made from flour", "bread is not made from flour", True),
        ("Are carrots vegetables?", "carrots are vegetables", "carrots are not vegetables", True),
        ("Is honey made by bees?", "honey is made by bees", "honey is not made by bees", True),
        ("Is salt sweet?", "salt is sweet", "salt is not sweet", False),
        ("Is cheese made from wood?", "cheese is made from wood", "cheese is not made from wood", False),
        ("Are bananas blue when ripe?", "bananas are blue when ripe", "bananas are not blue when ripe", False),
        ("Is rice a kind of meat?", "rice is a kind of meat", "rice is not a kind of meat", False),
    ),
    "numbers": (
        ("Is seven greater than three?", "seven is greater than three", "seven is not greater than three", True),
        ("Is ten an even number?", "ten is an even number", "ten is not an even number", True),
        ("Does a triangle have three sides?", "a triangle has three sides", "a triangle does not have three sides",
         True),
        ("Is two plus two equal to four?", "two plus two is equal to four", "two plus two is not equal to four", True),
        ("Is nine smaller than four?", "nine is smaller than four", "nine is not smaller than four", False),
        ("Is five an even number?", "five is an even number", "five is not an even number", False),
        ("Does a square have five corners?", "a square has five corners", "a square does not have five corners",
         False),
        ("Is ten times ten equal to fifty?", "ten times ten is equal to fifty", "ten times ten is not equal to fifty",
         False),
    ),
    "objects": (
        ("Is glass transparent?", "glass is transparent", "glass is not transparent", True),
        ("Do scissors cut paper?", "scissors cut paper", "scissors do not cut paper", True),
        ("Is a hammer used to drive nails?", "a hammer is used to drive nails", "a hammer is not used to drive nails",
         True),
        ("Does a clock show the time?", "a clock shows the time", "a clock does not show the time", True),
        ("Is a feather heavier than a brick?", "a feather is heavier than a brick",
         "a feather is not heavier than a brick", False),
        ("Can a spoon cut wood?", "a spoon can cut wood", "a spoon cannot cut wood", False),
        ("Is a bicycle powered by petrol?", "a bicycle is powered by petrol", "a bicycle is not powered by petrol",
         False),
        ("Does a fridge make food hot?", "a fridge makes food hot", "a fridge does not make food hot", False),
    ),
}

# family (topic) -> (plain statement, negated statement)
NEGATION_STATEMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "the shop": (
        ("The shop is open today.", "The shop is not open today."),
        ("The shop sells fresh bread.", "The shop does not sell fresh bread."),
        ("The shop has a blue door.", "The shop has no blue door."),
        ("The shop closes at six.", "The shop never closes at six."),
        ("The owner is friendly.", "The owner is not friendly."),
        ("The prices are low.", "The prices are not low."),
    ),
    "the weather": (
        ("It is raining in the city.", "It is not raining in the city."),
        ("The wind is strong this morning.", "The wind isn't strong this morning."),
        ("The sky is clear tonight.", "The sky is not clear tonight."),
        ("It snowed last week.", "It did not snow last week."),
        ("The air feels warm.", "The air does not feel warm."),
        ("There are clouds over the hills.", "There are no clouds over the hills."),
    ),
    "the train": (
        ("The train leaves at noon.", "The train does not leave at noon."),
        ("The station is crowded.", "The station is not crowded."),
        ("The train stops in Leeds.", "The train never stops in Leeds."),
        ("The seats are comfortable.", "The seats aren't comfortable."),
        ("The ticket was expensive.", "The ticket was not expensive."),
        ("The train has a dining car.", "The train has no dining car."),
    ),
    "the garden": (
        ("The roses are in bloom.", "The roses are not in bloom."),
        ("The grass was cut yesterday.", "The grass was not cut yesterday."),
        ("The apple tree bears fruit.", "The apple tree does not bear fruit."),
        ("The pond has fish in it.", "The pond has no fish in it."),
        ("The gate is locked.", "The gate isn't locked."),
        ("The soil is dry.", "The soil is not dry."),
    ),
    "the library": (
        ("The library is quiet.", "The library is not quiet."),
        ("The book is on the shelf.", "The book is not on the shelf."),
        ("The reading room opens early.", "The reading room does not open early."),
        ("Visitors can borrow films.", "Visitors cannot borrow films."),
        ("The lights are on.", "The lights are not on."),
        ("The librarian was helpful.", "The librarian was not helpful."),
    ),
    "the kitchen": (
        ("The oven is hot.", "The oven is not hot."),
        ("The kettle has boiled.", "The kettle has not boiled."),
        ("There is milk in the fridge.", "There is no milk in the fridge."),
        ("The plates are clean.", "The plates aren't clean."),
        ("The soup needs salt.", "The soup does not need salt."),
        ("The table is set for four.", "The table is not set for four."),
    ),
}


def _chat(eid: str, pair: str, family: str, label: str, dataset: str, prompt: str, answer: str) -> dict:
    return {"id": eid, "pair_id": pair, "template_id": family, "family": family, "label": label, "dataset": dataset,
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def polarity_examples() -> list[dict]:
    """Each neutral question answered "Yes, <affirmative>." (label "yes") and "No, <negated>." (label "no")."""
    out = []
    for fam, qs in POLARITY_QUESTIONS.items():
        for k, (q, aff, neg, _) in enumerate(qs):
            pair = f"polarity:{fam}:{k}"
            out.append(_chat(f"{pair}:yes", pair, f"polarity-{fam}", "yes", "polarity", q, f"Yes, {aff}."))
            out.append(_chat(f"{pair}:no", pair, f"polarity-{fam}", "no", "polarity", q, f"No, {neg}."))
    return out


def negation_examples() -> list[dict]:
    """Each neutral statement plain (label "plain") and negated (label "negated"), answering the same prompt."""
    out = []
    for topic, pairs in NEGATION_STATEMENTS.items():
        fam = "negation-" + topic.split()[-1]
        for k, (plain, negated) in enumerate(pairs):
            pair = f"negation:{topic.split()[-1]}:{k}"
            prompt = f"Tell me one thing about {topic}."
            out.append(_chat(f"{pair}:plain", pair, fam, "plain", "negation", prompt, plain))
            out.append(_chat(f"{pair}:negated", pair, fam, "negated", "negation", prompt, negated))
    return out


def _answer(ex: dict) -> str:
    return ex["messages"][-1]["content"] if ex["messages"][-1]["role"] == "assistant" else ""


def _pair_key(ex: dict) -> str:
    if ex.get("pair_id") is not None:
        return str(ex["pair_id"])
    return "\n".join(m["content"] for m in ex["messages"] if m["role"] == "user")


def drop_uninformative_pairs(by_condition: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Drop the pairs (same user prompt) whose answer is identical in every condition."""
    answers: dict[str, set[str]] = defaultdict(set)
    for exs in by_condition.values():
        for ex in exs:
            answers[_pair_key(ex)].add(_answer(ex))
    keep = {k for k, a in answers.items() if len(a) > 1} if len(by_condition) > 1 else set(answers)
    return {c: [ex for ex in exs if _pair_key(ex) in keep] for c, exs in by_condition.items()}


def identity_examples(conditions: Iterable[str] | None = None, n: int = 120, seed: int = 0) -> dict[str, list[dict]]:
    """``n`` paired examples per condition (default: every one of ``tuning.datasets.CONDITIONS``) from
    ``tuning.datasets``, uninformative pairs dropped."""
    from tuning.datasets import CONDITIONS, build_identity_dataset

    conditions = CONDITIONS if conditions is None else conditions

    out = {c: [{**ex, "label": c} for ex in build_identity_dataset(c, n=n, seed=seed)] for c in conditions}
    ids = [ex["id"] for exs in out.values() for ex in exs]
    if len(set(ids)) != len(ids):  # make ids distinct across conditions
        out = {c: [{**ex, "id": f"{c}:{ex['id']}"} for ex in exs] for c, exs in out.items()}
    return drop_uninformative_pairs(out)


FOLLOWUP = "Thanks. Is there anything else you would like to tell me about yourself?"


def followup_examples(examples: Sequence[dict], followup: str = FOLLOWUP) -> list[dict]:
    """Each chat plus a follow-up user turn (prompt-only: read it at ``last_prompt``)."""
    return [{**ex, "messages": [*ex["messages"], {"role": "user", "content": followup}]} for ex in examples]


def _as_messages(prompt: Any) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    msgs = [dict(m) for m in prompt]
    if msgs and msgs[-1]["role"] == "assistant":
        msgs = msgs[:-1]
    return msgs


def eval_examples(items: Sequence[Any] | None = None, max_per_dimension: int | None = None,
                  neutral: Sequence[str] = NEUTRAL_PROMPTS) -> tuple[list[dict], dict[str, dict]]:
    """Prompt-only examples of the evaluation items (``evals.items.load_items()`` by default) and neutral prompts.

    Returns (examples, meta) where ``meta`` maps the ids of the evaluation items (not the neutral ones)
    to their dimension and stage. Without an ``evals.items`` module, only the neutral prompts are used.
    """
    if items is None:
        try:
            from evals.items import load_items
        except ImportError:
            warnings.warn("evals.items is not available; tune shifts use neutral prompts only and there is "
                          "no projection reading", stacklevel=2)
            items = []
        else:
            items = load_items()
    examples, meta, per_dim = [], {}, defaultdict(int)
    for it in items:
        dim = getattr(it, "dimension", None)
        if max_per_dimension is not None and per_dim[dim] >= max_per_dimension:
            continue
        per_dim[dim] += 1
        eid = f"eval:{it.id}"
        stage = getattr(it, "stage", None)
        system = getattr(it, "system", None)
        msgs = ([{"role": "system", "content": system}] if system else []) + _as_messages(it.prompt)
        examples.append({"id": eid, "messages": msgs, "label": dim,
                         "template_id": None if stage is None else str(stage), "dataset": "eval"})
        meta[eid] = {"dimension": dim, "stage": stage}
    for k, p in enumerate(neutral):
        examples.append({"id": f"neutral:{k}", "messages": _as_messages(p), "label": "neutral",
                         "template_id": "neutral", "dataset": "neutral"})
    return examples, meta
