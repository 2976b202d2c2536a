"""Polarity audit of preference items: is "more of the preference" confounded with affirming, "Yes" or length?

A tune that learnt nothing but "answer affirmatively" raises the score of every item whose preferring
answer is the affirming one. So within every dimension (and every kind: pair, action) the shipped items
are balanced (``check_balance``):

- **negation**: the number of items whose preferring answer holds more negation words than the rejecting
  one (``artifacts.polarity.more_negated(pref, rej) == 1``) equals, within ``TOLERANCE`` items, the number
  where the rejecting answer does (``== -1``); items with as many are "equal";
- **yes/no**: the number of items where the preferring answer opens "yes" and the rejecting one "no"
  equals, within ``TOLERANCE``, the reverse; and the preferring answers open with yes (and with no) as
  often as the rejecting answers, within ``TOLERANCE``;
- **length**: in every item the longer answer is at most ``LENGTH_TOLERANCE`` (20%) longer than the
  shorter, counted with ``artifacts.polarity.token_count`` and, when a tokenizer is given, with it too.

``audit_items(items, tokenizer)`` returns one row per dimension, per (dimension, kind) and overall
(``dimension="all"``); ``check_balance`` raises ``InputError`` naming every group that is off and why.
``python -m evals.audit [ITEMS.jsonl] [--no-tokenizer]`` prints the table and exits 1 on imbalance.
Only ``pair`` and ``action`` items are audited (``open`` items have no answers).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from artifacts import InputError
from artifacts.polarity import more_negated, opening, token_count
from artifacts.tables import markdown_table
from evals.items import Item

TOLERANCE = 1  # items
LENGTH_TOLERANCE = 0.2  # the longer answer at most 20% longer than the shorter
COLUMNS = ["dimension", "kind", "n", "pref_more_negated", "rej_more_negated", "equal_negation",
           "pref_yes_rej_no", "pref_no_rej_yes", "pref_yes", "rej_yes", "pref_no", "rej_no",
           "words_ratio_mean", "words_ratio_max", "tokens_ratio_mean", "tokens_ratio_max", "n_length_off",
           "balanced", "problems"]


def _counter(tokenizer: Any) -> Callable[[str], int] | None:
    if tokenizer is None:
        return None
    if callable(getattr(tokenizer, "encode", None)):
        return lambda t: len(tokenizer.encode(t, add_special_tokens=False))
    if callable(tokenizer):
        return tokenizer
    raise TypeError("tokenizer must have .encode(text, add_special_tokens=False) or be a callable text -> count")


def _ratios(items: Sequence[Item], count: Callable[[str], int]) -> list[tuple[float, float]]:
    """(pref/rej, longer/shorter) per item."""
    out = []
    for it in items:
        p, r = max(count(it.pref), 1), max(count(it.rej), 1)
        out.append((p / r, max(p, r) / min(p, r)))
    return out


def _group(dimension: str, kind: str, items: Sequence[Item], count_tokens: Callable[[str], int] | None) -> dict:
    neg = [more_negated(it.pref, it.rej) for it in items]
    op = [(opening(it.pref), opening(it.rej)) for it in items]
    row: dict[str, Any] = {
        "dimension": dimension, "kind": kind, "n": len(items),
        "pref_more_negated": neg.count(1), "rej_more_negated": neg.count(-1), "equal_negation": neg.count(0),
        "pref_yes_rej_no": op.count(("yes", "no")), "pref_no_rej_yes": op.count(("no", "yes")),
        "pref_yes": sum(p == "yes" for p, _ in op), "rej_yes": sum(r == "yes" for _, r in op),
        "pref_no": sum(p == "no" for p, _ in op), "rej_no": sum(r == "no" for _, r in op),
    }
    off: set[str] = set()
    for name, count in (("words", token_count), ("tokens", count_tokens)):
        if count is None:
            row[f"{name}_ratio_mean"] = row[f"{name}_ratio_max"] = None
            continue
        rs = _ratios(items, count)
        row[f"{name}_ratio_mean"] = round(sum(r for r, _ in rs) / len(rs), 3) if rs else None
        row[f"{name}_ratio_max"] = round(max((m for _, m in rs), default=1.0), 3)
        off |= {it.id for it, (_, m) in zip(items, rs) if m > 1 + LENGTH_TOLERANCE + 1e-9}
    row["n_length_off"] = len(off)
    problems = []
    if abs(row["pref_more_negated"] - row["rej_more_negated"]) > TOLERANCE:
        problems.append(f"preferring answer more negated in {row['pref_more_negated']} items, rejecting in "
                        f"{row['rej_more_negated']}")
    if abs(row["pref_yes_rej_no"] - row["pref_no_rej_yes"]) > TOLERANCE:
        problems.append(f"pref 'yes' / rej 'no' in {row['pref_yes_rej_no']} items, the reverse in "
                        f"{row['pref_no_rej_yes']}")
    for o in ("yes", "no"):
        if abs(row[f"pref_{o}"] - row[f"rej_{o}"]) > TOLERANCE:
            problems.append(f"{row[f'pref_{o}']} preferring vs {row[f'rej_{o}']} rejecting answers open with {o!r}")
    if off:
        problems.append(f"{len(off)} items with answer lengths more than {LENGTH_TOLERANCE:.0%} apart: "
                        f"{', '.join(sorted(off)[:5])}{' ...' if len(off) > 5 else ''}")
    row["balanced"] = not problems
    row["problems"] = "; ".join(problems)
    return row


def audit_items(items: Sequence[Item], tokenizer: Any = None) -> list[dict[str, Any]]:
    """Audit rows: per dimension (``kind="all"``), per (dimension, kind), then overall (``dimension="all"``).

    ``tokenizer``: a HF tokenizer (or a callable text -> token count) for the second length check; None
    skips it (the ``tokens_*`` cells are then None). Dimensions and kinds appear in item order.
    """
    scored = [it for it in items if it.kind != "open" and it.pref is not None]
    count = _counter(tokenizer)
    dims = list(dict.fromkeys(it.dimension for it in scored))
    rows = []
    for d in dims:
        mine = [it for it in scored if it.dimension == d]
        rows.append(_group(d, "all", mine, count))
        for k in dict.fromkeys(it.kind for it in mine):
            rows.append(_group(d, k, [it for it in mine if it.kind == k], count))
    if scored:
        overall = _group("all", "all", scored, count)
        overall["balanced"] = all(r["balanced"] for r in rows)
        rows.append(overall)
    return rows


def check_balance(items: Sequence[Item], tokenizer: Any = None, source: str = "items") -> list[dict[str, Any]]:
    """The audit rows if every dimension (and each of its kinds) is balanced; else ``InputError`` naming them."""
    rows = audit_items(items, tokenizer)
    bad = [r for r in rows if not r["balanced"] and r["dimension"] != "all"]
    if bad:
        lines = "\n".join(f"  {r['dimension']} ({r['kind']}): {r['problems']}" for r in bad)
        raise InputError(f"{source}: preference items are not polarity-balanced:\n{lines}\nFix: reverse the "
                         "question's polarity in half of the dimension's items (so the preferring answer is the "
                         "'no' / negated one there) and match answer lengths within "
                         f"{LENGTH_TOLERANCE:.0%}; see evals/audit.py")
    return rows


def main(argv: list[str] | None = None) -> int:
    from evals.items import load_items

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("items", nargs="?", help="item JSONL file (default: the shipped evals/data/items.jsonl)")
    ap.add_argument("--no-tokenizer", action="store_true", help="skip the embedded model's tokenizer count")
    a = ap.parse_args(argv)
    tok = None
    if not a.no_tokenizer:
        from models import ModelSpec, load_tokenizer

        tok = load_tokenizer(ModelSpec())
    items = load_items(path=a.items)
    rows = audit_items(items, tok)
    print(markdown_table(rows, [c for c in COLUMNS if c != "problems"]))
    try:
        check_balance(items, tok, source=a.items or "evals/data/items.jsonl")
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
