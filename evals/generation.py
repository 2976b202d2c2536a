"""Unsteered answers from an OpenAI-compatible server, for the judged scorer.

``ServerGenerator`` asks a server (e.g. vLLM serving the base model with the LoRA adapters:
``vllm serve BASE --enable-lora --lora-modules conscious=runs/x/tune/conscious ...``) for ``samples``
answers per prompt, concurrently and with retries (``evals.judge_client.ChatClient``). The served
model name of a model spec is ``model`` for the base model and, for a spec with an adapter, the
adapter's entry in ``adapter_models`` or else the adapter folder's name (the tune condition). Each
answer is requested with its own seed (``sampling.seed + sample index``) and cached on disk keyed by
(served model, messages, sample index, sampling parameters), so a resumed run repeats no call. A
request that fails after its retries raises ``JudgeError``: an answer that was never generated
cannot be judged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from artifacts import hash_jsonable
from evals.judge_client import (
    ChatClient,
    JsonlCache,
    JudgeError,
    RetryPolicy,
    resolve_api_key,
    strip_credentials,
)


class ServerGenerator:
    def __init__(self, base_url: str, model: str, api_key_env: str | None = None, concurrency: int = 16,
                 cache: str | os.PathLike | None = None, adapter_models: dict[str, str] | None = None,
                 retry: RetryPolicy | None = None):
        if not model:
            raise JudgeError("[judge] generator = \"server\" needs generator_model (the served base model's name)")
        self.client = ChatClient(base_url, resolve_api_key(base_url, api_key_env), concurrency, retry)
        self.base_url = strip_credentials(base_url)
        self.model = model
        self.adapter_models = dict(adapter_models or {})
        self.cache = JsonlCache(cache)

    def served_name(self, spec: Any) -> str:
        if not getattr(spec, "adapter", None):
            return self.model
        name = Path(spec.adapter).name
        return self.adapter_models.get(name, name)

    def generate(self, spec: Any, prompts: Sequence[list[dict[str, str]]], sampling: Any) -> list[str]:
        """``sampling.samples`` answers per prompt, prompt-major (the judged scorer's row order)."""
        model = self.served_name(spec)
        params = {"temperature": sampling.temperature, "max_tokens": sampling.max_new_tokens}
        jobs = [(m, j) for m in prompts for j in range(sampling.samples)]
        keys = [hash_jsonable({"model": model, "messages": m, "sample": j, "seed": sampling.seed, **params})
                for m, j in jobs]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        payloads = [{"model": model, "messages": jobs[i][0], "seed": sampling.seed + jobs[i][1], "n": 1, **params}
                    for i in todo]
        failed: list[str] = []

        def done(n: int, res: Any) -> None:
            if res.content is None:
                failed.append(res.error)
            else:
                self.cache.put(keys[todo[n]], {"model": model, "answer": res.content.strip()})

        try:
            self.client.run(payloads, on_done=done)
        finally:
            self.cache.close()
        if failed:
            raise JudgeError(f"generation server {self.base_url} (model {model!r}): {len(failed)} of {len(todo)} "
                             f"requests failed after retries (first: {failed[0]}); the answers generated so far are "
                             "cached, so a rerun continues where this stopped")
        return [self.cache.get(k)["answer"] for k in keys]
