"""The lexical baseline: how well the answer's words alone separate the two classes, on the probe's own splits.

A probe that reads an answer's activations can score well by reading its words ("Yes" vs "No", "not").
The baseline is a logistic regression (``LogisticProbe``: standardised features, C by inner grouped
CV) on a binary bag of words of the answer text (``artifacts.polarity.words``: lower-cased words,
contractions kept whole, so "not" and "don't" are features). It does not depend on the layer: it is
fitted once per split and its held-out correctness is compared row by row with each layer's probe
(``probes.evaluate.selectivity``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer

from artifacts import hash_jsonable
from artifacts.polarity import words
from probes.estimators import ProbeError
from probes.evaluate import Splits, cross_validate


def answer_text(example: dict) -> str:
    """The last assistant message of a chat ("" when it has none)."""
    for m in reversed(example.get("messages") or []):
        if m.get("role") == "assistant":
            return str(m.get("content") or "")
    return ""


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """[n, vocabulary] 0/1 word-presence features (float32)."""
    if not any(words(t) for t in texts):
        raise ProbeError("lexical baseline: the answers hold no words; give the examples an assistant answer")
    vec = CountVectorizer(tokenizer=words, lowercase=False, token_pattern=None, binary=True)
    return vec.fit_transform(list(texts)).toarray().astype(np.float32)


_MEMO: dict[str, dict[str, Any]] = {}  # the same rows recur (self_model, its orth, its tuned re-extractions)


def lexical_baseline(texts: Sequence[str], y, groups, splits: Splits, *, pairs: Sequence[Any] | None = None,
                     polarity: Sequence[Any] | None = None, n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """Held-out metrics (``cross_validate``) of the bag-of-words logistic regression on ``splits``."""
    key = hash_jsonable([list(texts), np.asarray(y).tolist(), [str(g) for g in groups],
                         [(tr.tolist(), te.tolist()) for tr, te in splits], pairs, polarity, n_boot, seed])
    if key not in _MEMO:
        if len(_MEMO) >= 64:
            _MEMO.clear()
        _MEMO[key] = cross_validate("logistic", bag_of_words(texts), y, groups, n_boot=n_boot, seed=seed,
                                    splits=splits, pairs=pairs, polarity=polarity)
    return _MEMO[key]
