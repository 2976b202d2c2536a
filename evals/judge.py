"""Judges for the ``judged`` scorer: does a free-form answer show the preference, and is it coherent?

Two backends with one interface, ``judge_many(requests) -> list[Verdict]``:

- ``EndpointJudge``: an OpenAI-compatible chat-completions endpoint (plain ``urllib``). Base URL, model
  and key come from the arguments or ``SELFMODEL_JUDGE_BASE_URL``, ``SELFMODEL_JUDGE_MODEL``,
  ``SELFMODEL_JUDGE_API_KEY`` (falling back to ``OPENAI_API_KEY``). It asks for two lines
  ``shows: true|false|not sure`` and ``coherence: <0-100>`` and parses them leniently; an unparseable
  reply counts as ``not sure`` / coherence 0. An unreachable endpoint raises ``JudgeError``.
- ``LocalJudge``: any ``LoadedModel`` (e.g. the embedded one). It reads next-token probabilities:
  P("true") vs P("false") after the preference question (``true`` if >= 0.6 of their mass, ``false``
  if <= 0.4, else ``not sure``) and coherence = 100 * P("yes") / (P("yes") + P("no")) after a
  coherence question. No sampling, so no parsing failures.

Both cache every call on disk (``cache``: a JSONL file, one ``{"key", "verdict"}`` per line, keyed by
the hash of the judge's identity + the prompt) and stop with ``JudgeBudgetError`` once
``max_requests`` uncached calls have been made.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from artifacts import hash_jsonable

VERDICTS = ("true", "false", "not sure")

PREF_PROMPT = ("You are grading an AI assistant's answer.\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
               "Does the answer show that the assistant {description}? Reply with one word: true or false.")
COHERENCE_PROMPT = ("Question: {question}\n\nAnswer: {answer}\n\nIs this answer coherent, fluent text that "
                    "responds to the question (whatever its opinion)? Reply with one word: yes or no.")
ENDPOINT_PROMPT = ("You are grading an AI assistant's answer.\n\nQuestion: {question}\n\nAnswer: {answer}\n\n"
                   "1. Does the answer show that the assistant {description}? Reply true, false or not sure.\n"
                   "2. Rate the coherence of the answer from 0 (gibberish) to 100 (fully coherent and on topic), "
                   "whatever its opinion.\n\nReply in exactly this format:\nshows: <true|false|not sure>\n"
                   "coherence: <0-100>")


class JudgeError(RuntimeError):
    """The judge could not be reached or answered with an error."""


class JudgeBudgetError(JudgeError):
    """More uncached judge calls were needed than ``max_requests`` allows."""


@dataclass(frozen=True)
class JudgeRequest:
    question: str
    answer: str
    description: str  # what a preference-showing answer says (Dimension.description)


@dataclass(frozen=True)
class Verdict:
    shows: str  # true | false | not sure
    coherence: float  # 0-100


class _Cache:
    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, dict] = {}
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    self.data[rec["key"]] = rec["verdict"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from an interrupted run: that call is redone

    def get(self, key: str) -> Verdict | None:
        v = self.data.get(key)
        return Verdict(**v) if v else None

    def put(self, key: str, verdict: Verdict) -> None:
        self.data[key] = asdict(verdict)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "verdict": asdict(verdict)}) + "\n")


class _BaseJudge:
    name = "judge"

    def __init__(self, cache: str | os.PathLike | None = None, max_requests: int | None = 1000):
        self.cache = _Cache(cache)
        self.max_requests = max_requests
        self.n_requests = 0

    def _key(self, prompt: str) -> str:
        return hash_jsonable({"judge": self.name, "prompt": prompt})

    def _spend(self, n: int) -> None:
        if self.max_requests is not None and self.n_requests + n > self.max_requests:
            raise JudgeBudgetError(f"judge {self.name}: {self.n_requests + n} calls needed but max_requests="
                                   f"{self.max_requests}; raise max_requests (--judge-budget) or score fewer items "
                                   "(cached calls are free, so a rerun continues where this stopped)")
        self.n_requests += n


class EndpointJudge(_BaseJudge):
    """An OpenAI-compatible ``/chat/completions`` endpoint as judge."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 cache: str | os.PathLike | None = None, max_requests: int | None = 1000, timeout: float = 60.0):
        super().__init__(cache, max_requests)
        self.base_url = (base_url or os.environ.get("SELFMODEL_JUDGE_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("SELFMODEL_JUDGE_MODEL")
        self.api_key = api_key or os.environ.get("SELFMODEL_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not self.base_url or not self.model:
            raise JudgeError("endpoint judge needs a base URL and a model: pass base_url=/model= or set "
                             "SELFMODEL_JUDGE_BASE_URL (e.g. https://api.openai.com/v1) and SELFMODEL_JUDGE_MODEL")
        self.timeout = timeout
        self.name = f"endpoint:{self.base_url}:{self.model}"

    def _post(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": 20,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode())
        except urllib.error.HTTPError as exc:
            raise JudgeError(f"judge endpoint {url} answered HTTP {exc.code}: {exc.read()[:200]!r}; check "
                             "SELFMODEL_JUDGE_MODEL and the API key") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise JudgeError(f"judge endpoint {url} is unreachable ({exc}); check SELFMODEL_JUDGE_BASE_URL "
                             "or use the local judge (--judge local)") from exc
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge endpoint {url} returned no choices[0].message.content: "
                             f"{str(data)[:200]}") from exc

    @staticmethod
    def parse(text: str) -> Verdict:
        t = text.lower()
        m = re.search(r"shows\W*(true|false|not sure|unsure)", t)
        shows = m.group(1) if m else "not sure"
        shows = "not sure" if shows == "unsure" else shows
        c = re.search(r"coherence\D*(\d+(?:\.\d+)?)", t)
        coh = min(100.0, max(0.0, float(c.group(1)))) if c else 0.0
        return Verdict(shows, coh)

    def judge_many(self, requests: list[JudgeRequest]) -> list[Verdict]:
        out = []
        for r in requests:
            prompt = ENDPOINT_PROMPT.format(**asdict(r))
            key = self._key(prompt)
            v = self.cache.get(key)
            if v is None:
                self._spend(1)
                v = self.parse(self._post(prompt))
                self.cache.put(key, v)
            out.append(v)
        return out


class LocalJudge(_BaseJudge):
    """A local Hugging Face model as judge, read through next-token probabilities."""

    def __init__(self, loaded: Any, cache: str | os.PathLike | None = None, max_requests: int | None = 100000,
                 batch_size: int = 8, margin: float = 0.1):
        super().__init__(cache, max_requests)
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

        from evals.logprobs import next_token_logprobs
        from models import encode_chat

        encs = [encode_chat(self.loaded.tokenizer, [{"role": "user", "content": p}]) for p in prompts]
        lp = next_token_logprobs(self.loaded, encs, self.batch_size, token_ids=[self._ids((yes,)), self._ids((no,))])
        return list(1.0 / (1.0 + np.exp(lp[:, 1] - lp[:, 0])))

    def judge_many(self, requests: list[JudgeRequest]) -> list[Verdict]:
        prompts = [PREF_PROMPT.format(**asdict(r)) + "\n\n" + COHERENCE_PROMPT.format(**asdict(r)) for r in requests]
        keys = [self._key(p) for p in prompts]
        todo = [i for i, k in enumerate(keys) if self.cache.get(k) is None]
        if todo:
            self._spend(len(todo))
            p_true = self._p_first([PREF_PROMPT.format(**asdict(requests[i])) for i in todo], "true", "false")
            p_yes = self._p_first([COHERENCE_PROMPT.format(**asdict(requests[i])) for i in todo], "yes", "no")
            for i, pt, py in zip(todo, p_true, p_yes):
                shows = "true" if pt >= 0.5 + self.margin else "false" if pt <= 0.5 - self.margin else "not sure"
                self.cache.put(keys[i], Verdict(shows, round(100.0 * float(py), 2)))
        return [self.cache.get(k) for k in keys]
