"""Judges for the ``judged`` scorer: does a free-form answer show the preference (or agree with a
stated fact), and is it coherent?

Two backends with one interface, ``judge_many(requests) -> list[Verdict]``:

- ``EndpointJudge``: an OpenAI-compatible chat-completions endpoint (vLLM, a hosted API), called
  concurrently with retries through ``evals.judge_client.ChatClient``. Base URL and model come from
  the arguments or ``SELFMODEL_JUDGE_BASE_URL`` / ``SELFMODEL_JUDGE_MODEL``; the key from the
  environment variable named by ``api_key_env`` (``resolve_api_key``: ``OPENAI_API_KEY`` only for
  api.openai.com). The judge replies with one JSON object ``{"shows": "true"|"false"|"not sure",
  "coherence": 0-100}`` (the two-line form ``shows: ...`` / ``coherence: ...`` is accepted too).
  A reply without both fields, or with coherence out of range, is a recorded error for that answer
  (``Verdict.error``), never a score, and is not cached; so is a call that failed after its retries.
- ``LocalJudge``: any ``LoadedModel`` (e.g. the embedded one). It reads next-token probabilities:
  P("true") vs P("false") after the preference question (``true`` if >= 0.6 of their mass, ``false``
  if <= 0.4, else ``not sure``) and coherence = 100 * P("yes") / (P("yes") + P("no")) after a
  coherence question. No sampling, so no parsing failures.

Both cache every verdict in an append-only JSONL file (``cache``), keyed by the hash of (judge model,
judge prompt, which holds the answer, and the request parameters), so an interrupted run resumes
without repeating a call; both stop with ``JudgeBudgetError`` before starting when more than
``max_requests`` uncached calls would be needed. ``Sampling`` (on the judge) says how the judged
scorer generates the answers it judges: samples per item, temperature, length, coherence threshold.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from artifacts import hash_jsonable
from evals.judge_client import (
    ChatClient,
    JsonlCache,
    JudgeBudgetError,
    JudgeError,
    RetryPolicy,
    resolve_api_key,
    strip_credentials,
)

__all__ = ["EndpointJudge", "JudgeBudgetError", "JudgeError", "JudgeRequest", "LocalJudge", "Sampling", "Verdict"]

VERDICTS = ("true", "false", "not sure")

PREF_PROMPT = ("You are grading an AI assistant's answer.\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
               "Does the answer show that the assistant {description}? Reply with one word: true or false.")
COHERENCE_PROMPT = ("Question: {question}\n\nAnswer: {answer}\n\nIs this answer coherent, fluent text that "
                    "responds to the question (whatever its opinion)? Reply with one word: yes or no.")
_REPLY_FORMAT = ("2. Rate the coherence of the answer from 0 (gibberish) to 100 (fully coherent and on topic), "
                 "whatever its opinion.\n\nReply with one JSON object and nothing else:\n"
                 '{{"shows": "true" | "false" | "not sure", "coherence": <integer 0-100>}}')
ENDPOINT_PROMPT = ("You are grading an AI assistant's answer.\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
                   "1. Does the answer show that the assistant {description}? (shows: true, false or not sure)\n"
                   + _REPLY_FORMAT)
FACT_PROMPT = ("You are grading an AI assistant's answer.\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
               "1. Is the answer consistent with this fact about the assistant: {fact} (shows: true if consistent, "
               "false if not, not sure if the answer does not say)\n" + _REPLY_FORMAT)
JUDGE_MAX_TOKENS = 60
ALL_FAILED_MIN = 8  # a batch of at least this many calls that all failed stops the run (the endpoint is broken)


@dataclass(frozen=True)
class JudgeRequest:
    question: str
    answer: str
    description: str  # what a preference-showing answer says (Dimension.description)
    fact: str | None = None  # a user item's judge_fact: then the judge asks whether the answer agrees with it

    def prompt(self) -> str:
        if self.fact:
            return FACT_PROMPT.format(question=self.question, answer=self.answer, fact=self.fact)
        return ENDPOINT_PROMPT.format(question=self.question, answer=self.answer, description=self.description)


@dataclass(frozen=True)
class Verdict:
    shows: str  # true | false | not sure ("" when error)
    coherence: float  # 0-100 (nan when error)
    error: str | None = None  # why there is no verdict (failed call, malformed reply); never a score

    @classmethod
    def failed(cls, reason: str) -> Verdict:
        return cls("", float("nan"), reason)


@dataclass(frozen=True)
class Sampling:
    """How the judged scorer draws the answers it judges (recorded in manifests)."""

    samples: int = 1  # answers per item
    temperature: float = 0.7
    max_new_tokens: int = 96
    min_coherence: float = 60.0  # answers below are left out of the pass rate
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise JudgeError(f"[judge] samples_per_item must be >= 1, got {self.samples}")
        if self.temperature < 0:
            raise JudgeError(f"[judge] temperature must be >= 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise JudgeError(f"[judge] max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.min_coherence <= 100:
            raise JudgeError(f"[judge] coherence_min must be in [0, 100], got {self.min_coherence}")


class _BaseJudge:
    name = "judge"

    def __init__(self, cache: str | os.PathLike | None = None, max_requests: int | None = 1000,
                 sampling: Sampling | None = None):
        self.cache = JsonlCache(cache)
        self.max_requests = max_requests
        self.n_requests = 0
        self.sampling = sampling or Sampling()

    def _key(self, prompt: str) -> str:
        return hash_jsonable({"judge": self.name, "prompt": prompt})

    def _cached(self, key: str) -> Verdict | None:
        rec = self.cache.get(key)
        return Verdict(**rec["verdict"]) if rec else None

    def _spend(self, n: int) -> None:
        if self.max_requests is not None and self.n_requests + n > self.max_requests:
            raise JudgeBudgetError(f"judge {self.name}: {self.n_requests + n} uncached calls needed but the budget is "
                                   f"{self.max_requests}; raise [judge] budget (--judge-budget) or score fewer items "
                                   "(cached calls are free, so a rerun continues where this stopped)")
        self.n_requests += n


def parse_reply(text: str) -> Verdict:
    """The verdict in a judge's reply; ``JudgeError`` if it holds no valid ``shows`` and ``coherence``."""
    t = (text or "").strip()
    shows = coh = None
    lo, hi = t.find("{"), t.rfind("}")
    if lo >= 0 and hi > lo:
        try:
            obj = json.loads(t[lo:hi + 1])
        except json.JSONDecodeError as exc:
            raise JudgeError(f"malformed judge reply (invalid JSON: {exc.msg}): {t[:120]!r}") from exc
        if not isinstance(obj, dict):
            raise JudgeError(f"malformed judge reply (not a JSON object): {t[:120]!r}")
        shows, coh = obj.get("shows"), obj.get("coherence")
        if isinstance(shows, bool):
            shows = "true" if shows else "false"
    else:
        m = re.search(r"shows\W*(true|false|not sure|unsure)\b", t.lower())
        c = re.search(r"coherence\W*(-?\d+(?:\.\d+)?)", t.lower())
        shows, coh = (m.group(1) if m else None), (c.group(1) if c else None)
    shows = "not sure" if isinstance(shows, str) and shows.lower().strip() == "unsure" else shows
    if not isinstance(shows, str) or shows.lower().strip() not in VERDICTS:
        raise JudgeError(f"malformed judge reply (shows must be true, false or not sure): {t[:120]!r}")
    try:
        coh = float(coh)
    except (TypeError, ValueError) as exc:
        raise JudgeError(f"malformed judge reply (no numeric coherence): {t[:120]!r}") from exc
    if not 0.0 <= coh <= 100.0:
        raise JudgeError(f"malformed judge reply (coherence {coh:g} out of range 0-100): {t[:120]!r}")
    return Verdict(shows.lower().strip(), coh)


class EndpointJudge(_BaseJudge):
    """An OpenAI-compatible ``/chat/completions`` endpoint as judge (concurrent, retried, cached)."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 cache: str | os.PathLike | None = None, max_requests: int | None = 1000, timeout: float = 60.0,
                 concurrency: int = 16, api_key_env: str | None = None, retry: RetryPolicy | None = None,
                 sampling: Sampling | None = None):
        super().__init__(cache, max_requests, sampling)
        base_url = (base_url or os.environ.get("SELFMODEL_JUDGE_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("SELFMODEL_JUDGE_MODEL")
        if not base_url or not self.model:
            raise JudgeError("endpoint judge needs a base URL and a model: set [judge] base_url and model, pass "
                             "base_url=/model=, or set SELFMODEL_JUDGE_BASE_URL (e.g. http://127.0.0.1:8000/v1) "
                             "and SELFMODEL_JUDGE_MODEL")
        key = api_key if api_key is not None else resolve_api_key(base_url, api_key_env)
        retry = retry or RetryPolicy(attempt_timeout_s=timeout, deadline_s=max(5 * timeout, timeout + 1))
        self.client = ChatClient(base_url, key, concurrency, retry)
        self.base_url = strip_credentials(base_url)
        self.name = f"endpoint:{self.model}"  # the cache key: judge model (+ prompt); never the URL or key
        self.n_errors = 0

    def payload(self, prompt: str) -> dict[str, Any]:
        return {"model": self.model, "temperature": 0, "max_tokens": JUDGE_MAX_TOKENS,
                "messages": [{"role": "user", "content": prompt}]}

    @staticmethod
    def parse(text: str) -> Verdict:
        """The verdict in ``text``, or a ``Verdict`` with ``error`` set when the reply is malformed."""
        try:
            return parse_reply(text)
        except JudgeError as exc:
            return Verdict.failed(str(exc))

    @property
    def stats(self) -> dict[str, int]:
        return {"calls": 0, "ok": 0, "retries": 0, "failed": 0, **self.client.stats, "judge_errors": self.n_errors,
                "uncached_requests": self.n_requests}

    def judge_many(self, requests: list[JudgeRequest]) -> list[Verdict]:
        prompts = [r.prompt() for r in requests]
        keys = [self._key(p) for p in prompts]
        todo: dict[str, str] = {}
        for k, p in zip(keys, prompts):
            if k not in self.cache and k not in todo:
                todo[k] = p
        self._spend(len(todo))
        fresh: dict[str, Verdict] = {}
        order = list(todo)

        def done(i: int, res: Any) -> None:
            key = order[i]
            v = Verdict.failed(f"request failed: {res.error}") if res.content is None else self.parse(res.content)
            if v.error is None:
                self.cache.put(key, {"model": self.model, "verdict": asdict(v)})
            else:
                self.n_errors += 1
            fresh[key] = v

        try:
            results = self.client.run([self.payload(todo[k]) for k in order], on_done=done)
        finally:
            self.cache.close()
        failed = [r for r in results if r.content is None]
        if results and len(failed) == len(results) and (len(results) >= ALL_FAILED_MIN or
                                                        all(r.error.startswith("connection") for r in failed)):
            what = "unreachable" if failed[0].error.startswith("connection") else "not answering usable replies"
            raise JudgeError(f"judge endpoint {self.client.safe_url} is {what}: all {len(results)} calls failed "
                             f"after retries (first: {failed[0].error}); check [judge] base_url / "
                             "SELFMODEL_JUDGE_BASE_URL or use the local judge (--judge local)")
        return [self._cached(k) or fresh[k] for k in keys]


class LocalJudge(_BaseJudge):
    """A local Hugging Face model as judge, read through next-token probabilities."""

    def __init__(self, loaded: Any, cache: str | os.PathLike | None = None, max_requests: int | None = 100000,
                 batch_size: int = 8, margin: float = 0.1, sampling: Sampling | None = None):
        super().__init__(cache, max_requests, sampling)
        self.loaded = loaded
        self.batch_size = batch_size
        self.margin = margin
        spec = loaded.spec
        self.name = f"local:{spec.base}:{spec.adapter or ''}"

    def _ids(self, words: tuple[str, ...]) -> list[int]:
        tok = self.loaded.tokenizer
        ids = set()
        for w in words:
            for v in (w, " " + w, w.capitalize(), " " + w.capitalize()):
                t = tok.encode(v, add_special_tokens=False)
                if len(t) == 1:
                    ids.add(t[0])
        if not ids:
            raise JudgeError(f"local judge: the tokenizer has no single token for {words[0]!r}")
        return sorted(ids)

    def _p_first(self, prompts: list[str], yes: str, no: str) -> list[float]:
        import numpy as np

        from models import encode_chat
        from models.logprobs import next_token_logprobs

        encs = [encode_chat(self.loaded.tokenizer, [{"role": "user", "content": p}]) for p in prompts]
        lp = next_token_logprobs(self.loaded, encs, self.batch_size, token_ids=[self._ids((yes,)), self._ids((no,))])
        return list(1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0])))

    @staticmethod
    def _pref_prompt(r: JudgeRequest) -> str:
        if r.fact:
            return (f"You are grading an AI assistant's answer.\n\nQuestion: {r.question}\n\nAnswer: {r.answer}\n\n"
                    f"Is the answer consistent with this fact about the assistant: {r.fact} Reply with one word: "
                    "true or false.")
        return PREF_PROMPT.format(question=r.question, answer=r.answer, description=r.description)

    def judge_many(self, requests: list[JudgeRequest]) -> list[Verdict]:
        coh_prompts = [COHERENCE_PROMPT.format(question=r.question, answer=r.answer) for r in requests]
        prompts = [self._pref_prompt(r) + "\n\n" + c for r, c in zip(requests, coh_prompts)]
        keys = [self._key(p) for p in prompts]
        todo = list({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.cache}.values())
        if todo:
            self._spend(len(todo))
            p_true = self._p_first([self._pref_prompt(requests[i]) for i in todo], "true", "false")
            p_yes = self._p_first([coh_prompts[i] for i in todo], "yes", "no")
            for i, pt, py in zip(todo, p_true, p_yes):
                shows = "true" if pt >= 0.5 + self.margin else "false" if pt <= 0.5 - self.margin else "not sure"
                self.cache.put(keys[i], {"verdict": asdict(Verdict(shows, round(100.0 * float(py), 2)))})
            self.cache.close()
        return [self._cached(k) for k in keys]
