"""General instruction data, self-distilled from the base model, mixed 1:1 with the identity data.

``tuning/data/instructions.jsonl`` ships 300+ of our own instructions (writing, coding, maths, facts,
advice). ``self_distill`` answers them with the *base* model at temperature 1 (seeded), caching the
answers in a JSONL file keyed by model, seed, sampling settings and instruction hash. Generation runs
in fixed batches, each seeded by (seed, batch index) and appended to a ``.partial`` file, so an
interrupted run resumes where it stopped and gives the same answers; the finished file appears
atomically. Sampling is ``models.generation.generate`` (top-k/top-p off). With ``token_budget`` the
instructions are length-sorted and packed (``models.batching``), every answer is sampled by its own
generator seeded by (seed, instruction index) (``models.generation.RowSampler``), so it does not depend on
the batches, and the finished file lists the answers in input order.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from artifacts import InputError, atomic_path, hash_jsonable, read_jsonl
from models.generation import generate, sampling_settings

DATA = Path(__file__).with_name("data") / "instructions.jsonl"


def load_instructions(path: str | os.PathLike | None = None, n: int | None = None) -> list[dict]:
    """Rows ``{"id", "category", "instruction"}`` (the shipped list by default), first ``n`` if given."""
    path = Path(path) if path else DATA
    rows = read_jsonl(path)
    for i, r in enumerate(rows):
        if not isinstance(r.get("instruction"), str) or not r["instruction"].strip():
            raise InputError(f"{path}:{i + 1}: field 'instruction' is missing or empty; "
                             'each line needs {"id": ..., "instruction": "..."}')
        r.setdefault("id", f"instr-{i:03d}")
    return rows[:n] if n else rows


DISTILL_CHUNK = 64  # under a token budget: instructions generated (and appended to .partial) together


def distill_key(loaded: Any, instructions: list[dict], seed: int, temperature: float, max_new_tokens: int,
                batch_size: int, row_seeds: bool = False) -> str:
    """The cache key; with per-row seeds (token budget) the answers do not depend on the batch size."""
    batching = {"sampler": "row"} if row_seeds else {"batch_size": batch_size}
    return hash_jsonable({"model": loaded.spec.to_dict(), "instructions": [r["instruction"] for r in instructions],
                          "seed": seed, **batching, "generation": sampling_settings(max_new_tokens, temperature)})


def _read_cache(path: Path, key: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of an interrupted run: drop it
                break
            if row.get("key") != key:
                raise InputError(f"{path}: cached answers come from another model/seed/instruction set "
                                 f"(key {row.get('key', '?')[:12]} != {key[:12]}); delete it or pass another out_path")
            rows.append(row)
    return rows


def self_distill(loaded: Any, instructions: list[dict], out_path: str | os.PathLike, seed: int = 0,
                 temperature: float = 1.0, max_new_tokens: int = 128, batch_size: int = 16,
                 samples_per_instruction: int = 1, progress: bool = True,
                 token_budget: int | None = None) -> list[dict]:
    """Answer ``instructions`` with ``loaded`` (the base model); return chat examples. Cached in ``out_path``.

    ``samples_per_instruction`` > 1 draws several answers per instruction (ids ``<id>-s<j>``), e.g. 2 to
    get 600+ instruction examples from the shipped 310 for a 1:1 mix with 600 identity examples.
    """
    out_path = Path(out_path)
    if samples_per_instruction > 1:
        instructions = [dict(r, id=f"{r['id']}-s{j}") for j in range(samples_per_instruction) for r in instructions]
    key = distill_key(loaded, instructions, seed, temperature, max_new_tokens, batch_size, token_budget is not None)
    if out_path.exists():
        rows = _read_cache(out_path, key)
        if len(rows) != len(instructions):
            raise InputError(f"{out_path}: holds {len(rows)} answers for {len(instructions)} instructions; delete it")
        return [_to_example(r) for r in rows]
    partial = out_path.with_name(out_path.name + ".partial")
    if token_budget is not None:
        return _distill_packed(loaded, instructions, out_path, partial, key, seed, temperature, max_new_tokens,
                               batch_size, token_budget, progress)
    done = _read_cache(partial, key) if partial.exists() else []
    done = done[: len(done) - len(done) % batch_size] if len(done) < len(instructions) else done
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as fh:
        for r in done:
            fh.write(json.dumps(r) + "\n")
        starts = range(len(done), len(instructions), batch_size)
        for b0 in tqdm(starts, desc="self-distil", disable=not progress):
            batch = instructions[b0:b0 + batch_size]
            answers = generate(loaded, [[{"role": "user", "content": r["instruction"]}] for r in batch],
                               max_new_tokens=max_new_tokens, temperature=temperature,
                               seed=seed * 1_000_003 + b0, batch_size=batch_size, with_truncated=True)
            for r, (text, cut) in zip(batch, answers):
                fh.write(json.dumps({"key": key, "id": r["id"], "category": r.get("category"),
                                     "instruction": r["instruction"], "answer": text, "truncated": cut}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(partial, out_path)
    return [_to_example(r) for r in _read_cache(out_path, key)]


def _distill_packed(loaded: Any, instructions: list[dict], out_path: Path, partial: Path, key: str, seed: int,
                    temperature: float, max_new_tokens: int, batch_size: int, token_budget: int,
                    progress: bool) -> list[dict]:
    """``self_distill`` under a token budget: the instructions not yet in ``partial`` are length-sorted and
    generated ``DISTILL_CHUNK`` at a time with per-row seeds; the finished file is in input order."""
    from models.chat import encode_chat

    done = {r["id"]: r for r in (_read_cache(partial, key) if partial.exists() else [])}
    todo = [i for i, r in enumerate(instructions) if r["id"] not in done]
    msgs = [[{"role": "user", "content": r["instruction"]}] for r in instructions]
    length = {i: len(encode_chat(loaded.tokenizer, msgs[i])) for i in todo}
    todo.sort(key=lambda i: (-length[i], i))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as fh:
        for r in done.values():
            fh.write(json.dumps(r) + "\n")
        for c0 in tqdm(range(0, len(todo), DISTILL_CHUNK), desc="self-distil", disable=not progress):
            chunk = todo[c0:c0 + DISTILL_CHUNK]
            answers = generate(loaded, [msgs[i] for i in chunk], max_new_tokens=max_new_tokens, temperature=temperature,
                               seed=seed, batch_size=batch_size, with_truncated=True, token_budget=token_budget,
                               rows=chunk)
            for i, (text, cut) in zip(chunk, answers):
                r = instructions[i]
                done[r["id"]] = {"key": key, "id": r["id"], "category": r.get("category"),
                                 "instruction": r["instruction"], "answer": text, "truncated": cut}
                fh.write(json.dumps(done[r["id"]]) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    with atomic_path(out_path) as tmp:
        tmp.write_text("".join(json.dumps(done[r["id"]]) + "\n" for r in instructions), encoding="utf-8")
    partial.unlink()
    return [_to_example(done[r["id"]]) for r in instructions]


def _to_example(row: dict) -> dict:
    answer = row["answer"] or "."
    return {"id": f"instruction-{row['id']}", "messages": [{"role": "user", "content": row["instruction"]},
                                                           {"role": "assistant", "content": answer}],
            "condition": "instruction", "template_id": row.get("category"), "family": None, "label": "instruction",
            "dataset": "self-distilled-instructions", "truncated": bool(row.get("truncated", False))}


def mix(identity: list[dict], instruction_examples: list[dict], ratio: float = 1.0, seed: int = 0) -> list[dict]:
    """Identity examples plus ``round(ratio * len(identity))`` instruction examples, shuffled (seeded)."""
    want = round(ratio * len(identity))
    if want > len(instruction_examples):
        raise ValueError(f"mix needs {want} instruction examples for ratio {ratio} but got "
                         f"{len(instruction_examples)}; distil more instructions or lower the ratio")
    rng = random.Random(f"mix-{seed}")
    chosen = rng.sample(instruction_examples, want)
    out = list(identity) + chosen
    rng.shuffle(out)
    return out
