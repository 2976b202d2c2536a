"""LoRA fine-tuning (peft) on chat examples, loss on the answer only.

Labels are -100 everywhere except the assistant's response tokens (``encode_chat`` span
``[response_start, response_end)``) **plus the one end-of-turn token that follows** (``<|im_end|>``
for ChatML templates), so the tuned model also learns to stop; an example marked ``truncated`` (a
self-distilled answer cut at ``max_new_tokens``) ends at its last answer token, with no end-of-turn token. Seeded: the LoRA init, the data order
and everything else come from ``seed``, so the same inputs give identical adapter tensors (on the same
hardware and library versions).

The adapter directory (peft ``save_pretrained``: ``adapter_model.safetensors`` + ``adapter_config.json``)
also holds ``manifest.json`` (params include ``base`` and ``d_model``, read by
``models.loading._check_adapter``), ``train_log.jsonl`` and ``loss.png``. It is written to a temporary
sibling directory and renamed into place; a finished directory whose manifest key matches is skipped.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from artifacts import InputError, hash_jsonable, read_manifest, write_manifest
from artifacts.figures import colour, integer_ticks, new_figure, save_figure
from models import ModelSpec, encode_chat, load_model, pad_batch

STAGE = "tune"
LOSS_ON = "assistant response tokens + the end-of-turn token after them"


def encode_for_training(tokenizer: Any, examples: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example; labels are -100 outside the answer (+ its end-of-turn token)."""
    if not examples:
        raise InputError("no training examples: the dataset is empty; pass at least one example with an "
                         "assistant answer")
    out = []
    for i, ex in enumerate(examples):
        where = f"example {i} (id {ex.get('id', '?')!r})"
        msgs = ex.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise InputError(f"{where}: field 'messages' is missing or empty")
        if msgs[-1].get("role") != "assistant" or not str(msgs[-1].get("content", "")).strip():
            raise InputError(f"{where}: no assistant turn to train on; the last message must have role "
                             "'assistant' and non-empty content")
        enc = encode_chat(tokenizer, msgs)
        if ex.get("truncated"):  # cut at max_new_tokens: no end-of-turn token, so no mid-sentence stop is taught
            ids = enc.input_ids[:enc.response_end]
            end = enc.response_end
        else:
            ids = enc.input_ids
            end = min(enc.response_end + 1, len(enc))  # include the end-of-turn token
        labels = [-100] * len(ids)
        labels[enc.response_start:end] = ids[enc.response_start:end]
        out.append((ids, labels))
    return out


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    from models.chat import ChatEncoding

    encs = [ChatEncoding(ids, 0, 0, 0) for ids, _ in batch]
    pb = pad_batch(encs, pad_id, side="right", device=device)
    labels = torch.full_like(pb["input_ids"], -100)
    for i, (_, lab) in enumerate(batch):
        labels[i, :len(lab)] = torch.tensor(lab)
    return {"input_ids": pb["input_ids"], "attention_mask": pb["attention_mask"],
            "position_ids": pb["position_ids"], "labels": labels}


def answer_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (answer) tokens of a batch."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(),
                                             batch["labels"][:, 1:].flatten(), ignore_index=-100)


def _plot_loss(log: list[dict], path: Path) -> None:
    fig, ax = new_figure(size=(5, 3.2))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=1, color=colour("base"))
    ax.set_xlabel("optimiser step")
    integer_ticks(ax)
    ax.set_ylabel("answer-token loss (nats/token)")
    ax.set_title(f"Training loss: {path.parent.name.lstrip('.').split('.')[0] or 'tune'}")
    save_figure(fig, path)


def tune(spec: ModelSpec, examples: list[dict], out_dir: str | os.PathLike, rank: int = 16, alpha: int = 32,
         lr: float = 2e-4, epochs: int = 1, batch_size: int = 8, seed: int = 0, max_steps: int | None = None,
         target_modules: str | list[str] = "all-linear", progress: bool = True, warmup_frac: float = 0.05,
         prevent: Any = None, checkpoint_every: int = 0, on_checkpoint: Any = None) -> Path:
    """Fine-tune a LoRA adapter on ``examples`` over ``spec``'s base model; return the adapter directory.

    ``prevent``: a ``tuning.prevent.PreventSpec`` (or a list) edited into the block outputs during training
    only. ``on_checkpoint(step, loaded)``: called before the first step, every ``checkpoint_every`` steps and
    after the last, with the model in eval mode, no grad and the prevention paused (the model as it will be
    used); ``loaded`` is a ``LoadedModel`` of the adapter being trained."""
    from tuning.prevent import prevention
    if spec.adapter:
        raise ValueError(f"tune() trains a fresh adapter on a base model, but the spec already has adapter "
                         f"{spec.adapter}; pass spec.with_adapter(None)")
    out_dir = Path(out_dir)
    params = {"base": spec.base, "rank": rank, "alpha": alpha, "lr": lr, "epochs": epochs, "batch_size": batch_size,
              "seed": seed, "max_steps": max_steps, "target_modules": target_modules, "warmup_frac": warmup_frac,
              "loss_on": LOSS_ON, "dtype": spec.dtype}
    if prevent is not None:  # only then: the keys of ordinary tunes stay as they were
        specs = list(prevent) if isinstance(prevent, (list, tuple)) else [prevent]
        params["prevent"] = [p.as_params() for p in specs]
    data_hash = hash_jsonable([e["messages"] for e in examples]) if examples else None
    key = hash_jsonable({"params": params, "data": data_hash, "spec": spec.to_dict()})
    done = read_manifest(out_dir) if out_dir.exists() else None
    if done and done.get("key") == key and (out_dir / "adapter_config.json").exists():
        return out_dir

    torch.manual_seed(seed)
    random.seed(seed)
    loaded = load_model(spec)
    tok = loaded.tokenizer
    data = encode_for_training(tok, examples)
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=target_modules, bias="none",
                     task_type="CAUSAL_LM")
    model = get_peft_model(loaded.model, cfg)
    model.train()
    steps_per_epoch = math.ceil(len(data) / batch_size)
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * max(epochs, 1))
    if max_steps is not None and max_steps > steps_per_epoch * epochs:
        total = max_steps  # more steps than the epochs give: keep cycling the data
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    warm = max(1, int(warmup_frac * total))
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then linear decay to 0
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))

    rng = random.Random(f"order-{seed}")
    log: list[dict] = []
    t0 = time.time()
    step = 0
    bar = tqdm(total=total, desc=f"tune {out_dir.name}", disable=not progress)
    prev = prevention(model, prevent).__enter__()

    def checkpoint() -> None:
        if on_checkpoint is None:
            return
        from models import LoadedModel

        model.eval()
        with prev.paused(), torch.no_grad():
            on_checkpoint(step, LoadedModel(model, tok, spec))
        model.train()

    checkpoint()
    while step < total:
        order = list(range(len(data)))
        rng.shuffle(order)
        for b0 in range(0, len(order), batch_size):
            if step >= total:
                break
            batch = _collate([data[i] for i in order[b0:b0 + batch_size]], tok.pad_token_id, loaded.device)
            loss = answer_loss(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr (now {lr})")
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            log.append({"step": step, "loss": float(loss.item()), "lr": sched.get_last_lr()[0],
                        "tokens": int((batch["labels"] != -100).sum()), "elapsed_s": round(time.time() - t0, 3)})
            step += 1
            if checkpoint_every and step % checkpoint_every == 0 and step < total:
                checkpoint()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    prev.__exit__()
    checkpoint()
    wall = time.time() - t0

    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    with open(tmp / "train_log.jsonl", "w", encoding="utf-8") as fh:
        for r in log:
            fh.write(json.dumps(r) + "\n")
    _plot_loss(log, tmp / "loss.png")
    tail = [r["loss"] for r in log[-max(1, len(log) // 10):]]
    write_manifest(tmp, STAGE, inputs={"examples": data_hash, "n_examples": len(examples),
                                       "datasets": sorted({str(e.get("dataset")) for e in examples})},
                   params={**params, "d_model": loaded.d_model, "n_layers": loaded.n_layers},
                   outputs={"steps": step, "wall_s": round(wall, 1), "first_loss": log[0]["loss"],
                            "final_loss": sum(tail) / len(tail)},
                   spec=spec.to_dict(), key=key)
    if out_dir.exists():
        trash = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.old")
        os.replace(out_dir, trash)
        os.replace(tmp, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out_dir)
    return out_dir
