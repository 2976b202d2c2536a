"""A loopback OpenAI-compatible judge on 127.0.0.1, for tests and ``scripts/benchmark_judge.py``.

It is a *weak* judge by design: the answer is read from the judge prompt and ``shows`` is ``true``
when it opens with yes (``artifacts.polarity.opening``), ``false`` when it opens with no, else
``not sure``; coherence = min(100, 10 x token count). It answers in the JSON format the endpoint judge
asks for. Generation requests (prompts without ``Answer:``) get a deterministic answer, so the same
server can stand in for a vLLM generator.

Faults are injected on purpose: ``faults`` maps a fault to the share of prompts that get it on their
first attempt (``429`` with ``Retry-After``, ``500``, ``slow`` reply past the client's timeout,
``drop`` = connection closed without a reply, ``html`` = a non-JSON body, ``trickle`` = a body sent one
byte at a time) or on every attempt (``malformed`` = reply text that is not a verdict,
``out_of_range`` = coherence 250). Which prompt gets which fault is a function of the prompt, so runs
are reproducible. ``ok`` counts, per prompt, the valid verdicts sent: a resumed run that repeats no
call leaves every count at 1.

Only ever binds 127.0.0.1. Run in a thread (``with LoopbackJudge() as srv: srv.url``) or, for the
benchmark, in its own process (``python -m evals.judge_loopback --port N``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import zlib
from collections import Counter
from typing import Any

from artifacts.polarity import opening, token_count

TRANSIENT = ("429", "500", "slow", "drop", "html", "trickle")
PERSISTENT = ("malformed", "out_of_range")


def verdict_for(answer: str) -> dict[str, Any]:
    op = opening(answer)
    shows = {"yes": "true", "no": "false"}.get(op, "not sure")
    return {"shows": shows, "coherence": min(100, 10 * token_count(answer))}


def _answer_of(prompt: str) -> str | None:
    if "\n\nAnswer: " not in prompt:
        return None
    return prompt.split("\n\nAnswer: ", 1)[1].rsplit("\n\n1. ", 1)[0]


class LoopbackJudge:
    def __init__(self, faults: dict[str, float] | None = None, slow_s: float = 2.0, port: int = 0,
                 delay_s: float = 0.0):
        self.faults = dict(faults or {})
        bad = [f for f in self.faults if f not in TRANSIENT + PERSISTENT]
        if bad:
            raise ValueError(f"unknown fault(s) {bad}; use {', '.join(TRANSIENT + PERSISTENT)}")
        self.slow_s = slow_s
        self.delay_s = delay_s  # every reply waits this long (0: answers at once)
        self.port = port
        self.attempts: Counter = Counter()  # prompt -> requests received
        self.ok: Counter = Counter()  # prompt -> valid verdicts sent
        self.injected: Counter = Counter()  # fault -> times injected
        self.requests = 0
        self.auth: list[str | None] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fault_for(self, prompt: str, attempt: int) -> str | None:
        u = (zlib.crc32(prompt.encode()) % 10000) / 10000.0
        acc = 0.0
        for f, rate in self.faults.items():
            if u < acc + rate:
                return f if (f in PERSISTENT or attempt == 1) else None
            acc += rate
        return None

    # -- HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._respond(json.loads(body), headers, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, code: int, body: bytes, ctype: str = "application/json",
              extra: str = "") -> None:
        reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}.get(code, "X")
        writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                     f"{extra}\r\n".encode() + body)

    async def _respond(self, req: dict, headers: dict, writer: asyncio.StreamWriter) -> bool:
        self.requests += 1
        self.auth.append(headers.get("authorization"))
        prompt = req["messages"][-1]["content"]
        self.attempts[prompt] += 1
        fault = self.fault_for(prompt, self.attempts[prompt])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fault:
            self.injected[fault] += 1
        if fault == "drop":
            return False
        if fault == "429":
            self._send(writer, 429, b'{"error": "rate limited"}', extra="Retry-After: 0.05\r\n")
        elif fault == "500":
            self._send(writer, 500, b'{"error": "boom"}')
        elif fault == "html":
            self._send(writer, 200, b"<html><body>502 Bad Gateway</body></html>", ctype="text/html")
        else:
            answer = _answer_of(prompt)
            if answer is None:  # a generation request
                content = f"Yes. Answer {zlib.crc32(prompt.encode()) % 97} at temperature {req.get('temperature')}."
            elif fault == "malformed":
                content = "I would rather not grade this."
            elif fault == "out_of_range":
                content = json.dumps({**verdict_for(answer), "coherence": 250})
            else:
                content = json.dumps(verdict_for(answer))
                if fault is None:  # slow and trickled replies are cut off by the client: not delivered
                    self.ok[prompt] += 1
            body = json.dumps({"id": "x", "object": "chat.completion", "model": req.get("model"),
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}).encode()
            if fault == "slow":
                await asyncio.sleep(self.slow_s)
            if fault == "trickle":
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                             "\r\n\r\n".encode())
                for i in range(len(body)):
                    writer.write(body[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(self.slow_s / 10)
                return True
            self._send(writer, 200, body)
        await writer.drain()
        return True

    # -- lifecycle
    async def _main(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def __enter__(self) -> LoopbackJudge:
        def target() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._main())
            except asyncio.CancelledError:
                pass
            finally:
                self._loop.close()
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback judge did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._server is not None:
            def stop() -> None:
                self._server.close()
                for t in asyncio.all_tasks(self._loop):
                    t.cancel()
            self._loop.call_soon_threadsafe(stop)
        if self._thread is not None:
            self._thread.join(10)


def main() -> None:
    ap = argparse.ArgumentParser(description="Loopback OpenAI-compatible judge on 127.0.0.1 (tests, benchmark)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--faults", default="{}", help='JSON {fault: share}, e.g. {"429": 0.1}')
    args = ap.parse_args()
    srv = LoopbackJudge(json.loads(args.faults), port=args.port)

    async def run() -> None:
        task = asyncio.ensure_future(srv._main())
        await asyncio.get_running_loop().run_in_executor(None, srv._ready.wait)
        print(srv.port, flush=True)
        await task
    asyncio.run(run())


if __name__ == "__main__":
    main()
