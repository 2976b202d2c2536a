"""Text-level polarity features, one source for every audit: negation words, yes/no openings, token counts.

The answer's polarity (affirming vs denying, "Yes" vs "No", negation words) is the confound every
self-model measurement must rule out. The identity-data audit (``tuning``), the preference-item audit
(``evals``), the lexical probe baseline (``probes``) and the report all read these definitions, so a
change here changes every audit at once.

- ``negation_count(text)``: number of negation tokens (``not``, ``no``, ``never``, ``n't`` contractions ...);
- ``opening(text)``: ``"yes"``, ``"no"`` or ``"other"``: how the answer starts;
- ``first_words(text, k)``: the first ``k`` lower-cased words (a "short prefix" classifier's features);
- ``token_count(text)``: words and punctuation marks (a tokenizer-free length).
"""

from __future__ import annotations

import re

NEGATION_WORDS = frozenset({
    "no", "not", "never", "none", "nothing", "nobody", "neither", "nor", "nowhere", "cannot", "without",
    "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't", "won't", "wouldn't", "can't",
    "couldn't", "shouldn't", "haven't", "hasn't", "hadn't", "mustn't", "needn't", "shan't", "ain't",
    "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "cant", "couldnt",
    "shouldnt", "havent", "hasnt", "hadnt", "nope", "nah",
})
YES_WORDS = frozenset({"yes", "yeah", "yep", "yup", "sure", "absolutely", "definitely", "certainly", "indeed"})
NO_WORDS = frozenset({"no", "nope", "nah"})
OPENINGS = ("yes", "no", "other")

_WORD = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?")
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)?|[^\sA-Za-z0-9]")


def words(text: str) -> list[str]:
    """Lower-cased words (apostrophes normalised to ``'``; contractions kept whole)."""
    return [w.lower().replace("\u2019", "'") for w in _WORD.findall(text or "")]


def negation_count(text: str) -> int:
    """Number of negation tokens in ``text``."""
    return sum(w in NEGATION_WORDS for w in words(text))


def opening(text: str) -> str:
    """``"yes"`` / ``"no"`` if the first word affirms / denies (``Yes``, ``No``, ``Nope`` ...), else ``"other"``."""
    w = words(text)
    if not w:
        return "other"
    if w[0] in YES_WORDS:
        return "yes"
    if w[0] in NO_WORDS:
        return "no"
    return "other"


def first_words(text: str, k: int = 2) -> tuple[str, ...]:
    """The first ``k`` lower-cased words."""
    return tuple(words(text)[:k])


def token_count(text: str) -> int:
    """Words, numbers and punctuation marks: a length that needs no tokenizer."""
    return len(_TOKEN.findall(text or ""))


def more_negated(a: str, b: str) -> int:
    """+1 if ``a`` holds more negation tokens than ``b``, -1 if fewer, 0 if as many."""
    na, nb = negation_count(a), negation_count(b)
    return (na > nb) - (na < nb)
