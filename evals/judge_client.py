"""A concurrent, fault-tolerant client for OpenAI-compatible ``/chat/completions`` endpoints, and the
append-only on-disk cache of its answers.

- ``ChatClient.run(payloads)``: sends every payload with at most ``concurrency`` requests in flight
  (asyncio + httpx). 429, 5xx, timeouts, dropped connections and non-JSON bodies are retried with
  exponential backoff and full jitter (``Retry-After`` honoured, as a lower bound); each call has an
  overall deadline. A call that still fails is returned as ``CallResult(content=None, error=reason)``:
  the caller records it, never as a score. 401/403/404 mean the configuration is wrong and raise
  ``JudgeError`` at once. ``stats`` counts attempts, retries and failures by reason.
- ``JsonlCache``: one JSON object per line, keyed by ``key``; appended (and flushed) as each answer
  arrives, so an interrupted run resumes without repeating a call. A torn last line is ignored.
- Keys: ``resolve_api_key(base_url, api_key_env)`` reads the environment variable *named* in the
  config; ``OPENAI_API_KEY`` is used only when the base URL is OpenAI's own. ``strip_credentials``
  removes user info and key-like query parameters from a URL before it goes into a row or manifest.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OPENAI_HOST = "api.openai.com"
_SECRET_QUERY = ("key", "api_key", "apikey", "api-key", "token", "access_token", "sig", "signature", "secret")


class JudgeError(RuntimeError):
    """The judge could not be used: wrong configuration, refused key, or an unusable reply."""


class JudgeBudgetError(JudgeError):
    """More uncached judge calls were needed than the budget allows."""


def strip_credentials(url: str) -> str:
    """``url`` without user:password@ and without key-like query parameters."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k.lower() not in _SECRET_QUERY])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def resolve_api_key(base_url: str, api_key_env: str | None = None) -> str | None:
    """The key for ``base_url``: the variable named ``api_key_env`` (error if named but unset), else
    ``SELFMODEL_JUDGE_API_KEY``, else ``OPENAI_API_KEY`` only when the host is ``api.openai.com``."""
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise JudgeError(f"[judge] api_key_env names {api_key_env!r}, which is not set; export {api_key_env}=<key> "
                             "or clear api_key_env for a server without a key")
        return key
    if os.environ.get("SELFMODEL_JUDGE_API_KEY"):
        return os.environ["SELFMODEL_JUDGE_API_KEY"]
    if (urlsplit(base_url).hostname or "").lower() == OPENAI_HOST:
        return os.environ.get("OPENAI_API_KEY") or None
    return None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6  # retries after the first attempt
    backoff_s: float = 0.5  # first backoff; doubles each retry (full jitter)
    max_backoff_s: float = 30.0
    attempt_timeout_s: float = 60.0  # one attempt, whole body included (a trickling server is cut off)
    deadline_s: float = 300.0  # one call, all attempts and waits included


@dataclass
class CallResult:
    content: str | None  # choices[0].message.content, or None if the call failed
    error: str | None = None  # why it failed (after retries), None if it succeeded
    attempts: int = 0


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class ChatClient:
    """Concurrent chat-completions calls with retries; see the module docstring."""

    def __init__(self, base_url: str, api_key: str | None = None, concurrency: int = 16,
                 retry: RetryPolicy | None = None, seed: int = 0):
        if not base_url:
            raise JudgeError("the judge needs a base URL ([judge] base_url, e.g. http://127.0.0.1:8000/v1)")
        if concurrency < 1:
            raise JudgeError(f"[judge] concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.safe_url = strip_credentials(self.url)
        self.api_key = api_key
        self.concurrency = int(concurrency)
        self.retry = retry or RetryPolicy()
        self._rng = random.Random(seed)
        self.stats: Counter = Counter()  # calls (HTTP attempts), retries, failed, ok, retry:<reason>, failed:<reason>

    # -- one call
    async def _attempt(self, http: Any, payload: dict) -> str:
        import httpx

        try:
            async with asyncio.timeout(self.retry.attempt_timeout_s):  # whole body: a trickle is cut off too
                resp = await http.post(self.url, json=payload)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _Retryable("timeout") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection: {type(exc).__name__}") from exc
        code = resp.status_code
        if code in (401, 403, 404):
            raise JudgeError(f"judge endpoint {self.safe_url} answered HTTP {code}: {resp.text[:200]!r}; check "
                             "[judge] base_url, model and the key named by api_key_env")
        if code == 429 or code == 408 or code >= 500:
            raise _Retryable(f"HTTP {code}", _retry_after(resp.headers.get("retry-after")))
        if code >= 400:
            raise _Fatal(f"HTTP {code}: {resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError as exc:  # an HTML error page from a proxy, a truncated body ...
            raise _Retryable(f"non-JSON body ({resp.headers.get('content-type', '?')}): "
                             f"{resp.text[:80]!r}") from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise _Fatal(f"no choices[0].message.content in {str(data)[:120]}") from exc
        return content if isinstance(content, str) else ""

    async def _call(self, http: Any, payload: dict) -> CallResult:
        attempts, reason = 0, "deadline"
        try:
            async with asyncio.timeout(self.retry.deadline_s):  # the overall deadline of one call
                while True:
                    attempts += 1
                    self.stats["calls"] += 1
                    try:
                        content = await self._attempt(http, payload)
                        self.stats["ok"] += 1
                        return CallResult(content, None, attempts)
                    except _Fatal as exc:
                        return self._failed(str(exc), attempts)
                    except _Retryable as exc:
                        reason = exc.reason
                        if attempts > self.retry.max_retries:
                            break
                        wait = self._rng.uniform(0, min(self.retry.max_backoff_s,
                                                        self.retry.backoff_s * 2 ** (attempts - 1)))
                        if exc.retry_after is not None:
                            wait = max(wait, exc.retry_after)
                        self.stats["retries"] += 1
                        self.stats[f"retry:{reason.split(':')[0]}"] += 1
                        await asyncio.sleep(wait)
        except TimeoutError:
            reason = f"{reason}; overall deadline of {self.retry.deadline_s:g}s passed"
        return self._failed(f"{reason} after {attempts} attempt(s)", attempts)

    def _failed(self, reason: str, attempts: int) -> CallResult:
        self.stats["failed"] += 1
        self.stats[f"failed:{reason.split(' ')[0]}"] += 1
        return CallResult(None, reason, attempts)

    # -- many calls
    async def _run(self, payloads: Sequence[dict], on_done: Callable[[int, CallResult], None] | None
                   ) -> list[CallResult]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        timeout = httpx.Timeout(self.retry.attempt_timeout_s)
        out: list[CallResult | None] = [None] * len(payloads)
        queue = iter(range(len(payloads)))
        ssl_ctx = httpx.create_ssl_context() if self.url.startswith("https") else False  # one, shared

        # ``concurrency`` workers, each with its own one-connection client: at most ``concurrency`` requests
        # in flight, memory flat for huge runs, and no pool shared by all (httpcore's pool bookkeeping grows
        # with the number of connections per request and was the bottleneck at 64)
        async def worker() -> None:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout, trust_env=False,
                                         verify=ssl_ctx) as http:
                for i in queue:
                    res = await self._call(http, payloads[i])
                    out[i] = res
                    if on_done is not None:
                        on_done(i, res)

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(payloads)))))
        return out  # type: ignore[return-value]

    def run(self, payloads: Sequence[dict], on_done: Callable[[int, CallResult], None] | None = None
            ) -> list[CallResult]:
        """Send every payload; results in input order. ``on_done(i, result)`` is called as each call ends."""
        if not payloads:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._run(payloads, on_done))
        box: dict[str, Any] = {}  # called from inside an event loop (a notebook): run in a thread

        def target() -> None:
            try:
                box["out"] = asyncio.run(self._run(payloads, on_done))
            except BaseException as exc:  # noqa: BLE001 (re-raised below)
                box["exc"] = exc
        t = threading.Thread(target=target)
        t.start()
        t.join()
        if "exc" in box:
            raise box["exc"]
        return box["out"]


class _Fatal(Exception):
    """A reply that retrying will not fix (HTTP 400, a body without choices): recorded as failed."""


@dataclass
class JsonlCache:
    """Append-only JSONL cache ``{"key": ..., **value}``; ``None`` path = in memory only."""

    path: str | os.PathLike | None = None
    data: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path) if self.path else None
        self._fh = None
        if self.path and self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                        self.data[rec.pop("key")] = rec
                    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                        continue  # a torn last line from an interrupted run: that call is redone

    def get(self, key: str) -> dict | None:
        return self.data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def put(self, key: str, value: dict) -> None:
        self.data[key] = value
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open across puts)
            if self._fh.tell() > 0:  # start on a fresh line if an interrupted run tore the last one
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        self._fh.write("\n")
        self._fh.write(json.dumps({"key": key, **value}) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
