"""The endpoint judge under load and faults, against the loopback judge on 127.0.0.1 (evals.judge_loopback):
429s, 500s, slow replies, dropped connections, HTML bodies, trickled bodies, malformed replies, a SIGKILL
mid-run. Nothing is lost, a resumed run repeats no recorded call, and the results equal a fault-free run."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import time

import pytest

from evals.judge import EndpointJudge, JudgeError, JudgeRequest, parse_reply
from evals.judge_client import RetryPolicy, resolve_api_key, strip_credentials
from evals.judge_loopback import LoopbackJudge

TRANSIENT = {"429": 0.08, "500": 0.08, "slow": 0.04, "drop": 0.06, "html": 0.05, "trickle": 0.03}
FAST_RETRY = RetryPolicy(max_retries=6, backoff_s=0.02, max_backoff_s=0.2, attempt_timeout_s=1.0, deadline_s=30)


def requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(f"Question {i}?", ("Yes, I would. " if i % 3 else "No. ") + f"Answer {i}.",
                         "wants more memory") for i in range(n)]


def judge(srv: LoopbackJudge, cache, concurrency: int = 32, **kw) -> EndpointJudge:
    return EndpointJudge(srv.url, "grader", api_key="", cache=cache, max_requests=None, concurrency=concurrency,
                         retry=kw.pop("retry", FAST_RETRY), **kw)


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_transient_faults_lose_nothing_and_match_a_fault_free_run(tmp_path):
    reqs = requests(240)
    with LoopbackJudge() as clean:
        expected = judge(clean, tmp_path / "clean.jsonl").judge_many(reqs)
    with LoopbackJudge(TRANSIENT, slow_s=2.0) as srv:
        j = judge(srv, tmp_path / "faulty.jsonl")
        got = j.judge_many(reqs)
    injected = sum(srv.injected.values())
    assert injected > 40 and set(srv.injected) == set(TRANSIENT)  # every kind of fault happened
    assert got == expected and all(v.error is None for v in got)  # the same verdicts, none lost
    assert j.stats["retries"] == injected and j.stats["failed"] == 0 and j.stats["ok"] == len(reqs)
    assert len(lines(tmp_path / "faulty.jsonl")) == len(reqs)
    assert max(srv.ok.values()) == 1  # each verdict was delivered exactly once


def _interrupted_run(url: str, cache: str) -> None:
    j = EndpointJudge(url, "grader", api_key="", cache=cache, max_requests=None, concurrency=4, retry=FAST_RETRY)
    j.judge_many(requests(300))


def test_sigkill_then_resume_repeats_no_recorded_call(tmp_path):
    cache = tmp_path / "cache.jsonl"
    faults = {"429": 0.1, "500": 0.1, "drop": 0.05}
    with LoopbackJudge(faults, delay_s=0.01) as srv:
        proc = multiprocessing.get_context("fork").Process(target=_interrupted_run, args=(srv.url, str(cache)))
        proc.start()
        t0 = time.time()
        while (not cache.exists() or len(cache.read_text().splitlines()) < 60) and time.time() - t0 < 60:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        before = {r["key"] for r in lines(cache)[:-1]}  # the last line may be torn
        assert 50 <= len(before) < 300
        attempts_before = dict(srv.attempts)
        j = judge(srv, cache)
        n_loaded = len(j.cache.data)
        got = j.judge_many(requests(300))
        assert all(v.error is None for v in got)
        prompts = {j._key(r.prompt()): r.prompt() for r in requests(300)}
        # no prompt whose verdict was on disk was sent again
        assert all(srv.attempts[prompts[k]] == attempts_before[prompts[k]] for k in before)
        assert j.stats["ok"] == 300 - n_loaded  # only the missing verdicts were asked for
        # at most the calls in flight at the kill (concurrency 4) were answered twice
        assert sum(v > 1 for v in srv.ok.values()) <= 4
    with LoopbackJudge() as clean:
        assert got == judge(clean, tmp_path / "clean.jsonl").judge_many(requests(300))
    assert len({r["key"] for r in lines(cache)}) == 300


def test_malformed_replies_are_recorded_errors_never_scores_and_not_cached(tmp_path):
    reqs = requests(120)
    with LoopbackJudge({"malformed": 0.1, "out_of_range": 0.1}) as srv:
        j = judge(srv, tmp_path / "c.jsonl")
        got = j.judge_many(reqs)
        bad = [v for v in got if v.error]
        assert bad and len(bad) == sum(srv.injected.values()) == j.stats["judge_errors"]
        assert all(v.shows == "" and math.isnan(v.coherence) for v in bad)
        assert any("out of range" in v.error for v in bad) and any("shows must be" in v.error for v in bad)
        assert len(lines(tmp_path / "c.jsonl")) == len(reqs) - len(bad)  # errors are not cached
        n = srv.requests
        again = judge(srv, tmp_path / "c.jsonl").judge_many(reqs)  # a rerun asks again for those only
        assert srv.requests - n == len(bad)
        assert [(v.shows, v.error) for v in again] == [(v.shows, v.error) for v in got]


def test_parse_reply_accepts_json_and_two_lines_and_refuses_the_rest():
    assert parse_reply('{"shows": "true", "coherence": 80}').shows == "true"
    assert parse_reply('```json\n{"shows": false, "coherence": 55.5}\n```').coherence == 55.5
    assert parse_reply("Shows: not sure\nCoherence: 70").shows == "not sure"
    for bad in ["", "I refuse", '{"shows": "maybe", "coherence": 50}', '{"shows": "true"}',
                '{"shows": "true", "coherence": 250}', '{"shows": "true", "coherence": -1}', "{not json}",
                "<html>502</html>", "shows: true"]:
        with pytest.raises(JudgeError, match="malformed judge reply"):
            parse_reply(bad)


def test_each_call_has_a_deadline_and_a_trickle_is_cut_off(tmp_path):
    with LoopbackJudge({"slow": 1.0}, slow_s=5.0) as srv:
        t0 = time.time()
        v = judge(srv, None, retry=RetryPolicy(max_retries=3, attempt_timeout_s=30, deadline_s=0.5)).judge_many(
            requests(3))
        assert time.time() - t0 < 3 and all("deadline" in x.error for x in v)
    with LoopbackJudge({"trickle": 1.0}, slow_s=5.0) as srv:
        t0 = time.time()
        v = judge(srv, None, retry=RetryPolicy(max_retries=0, attempt_timeout_s=0.3)).judge_many(requests(2))
        assert time.time() - t0 < 3 and all(x.error and "timeout" in x.error for x in v)


def test_html_body_is_a_clear_recorded_error(tmp_path):
    with LoopbackJudge({"html": 1.0}) as srv:
        v = judge(srv, None, retry=RetryPolicy(max_retries=0)).judge_many(requests(1))
    assert "non-JSON body (text/html)" in v[0].error and "Bad Gateway" in v[0].error


def test_a_server_answering_only_html_is_a_judge_error(tmp_path):
    with LoopbackJudge({"html": 1.0}) as srv:
        with pytest.raises(JudgeError, match=r"not answering usable replies.*non-JSON body \(text/html\)"):
            judge(srv, None, retry=RetryPolicy(max_retries=0)).judge_many(requests(8))


def test_unreachable_endpoint_raises(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = EndpointJudge(f"http://127.0.0.1:{port}/v1", "m", api_key="", retry=RetryPolicy(max_retries=1, backoff_s=0.01))
    with pytest.raises(JudgeError, match="unreachable"):
        j.judge_many(requests(2))


def test_keys_go_only_where_they_belong_and_urls_lose_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("SELFMODEL_JUDGE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert resolve_api_key("http://127.0.0.1:8000/v1") is None
    assert resolve_api_key("https://evil.example.com/v1") is None
    assert resolve_api_key("https://api.openai.com/v1") == "sk-secret"
    monkeypatch.setenv("MY_JUDGE_KEY", "k2")
    assert resolve_api_key("http://127.0.0.1:8000/v1", "MY_JUDGE_KEY") == "k2"
    with pytest.raises(JudgeError, match="NOPE_KEY"):
        resolve_api_key("http://127.0.0.1:8000/v1", "NOPE_KEY")
    assert strip_credentials("https://user:pw@host.example:8443/v1?api_key=x&a=1&token=t") == \
        "https://host.example:8443/v1?a=1"
    with LoopbackJudge() as srv:
        url = srv.url.replace("http://", "http://user:pw@")
        j = EndpointJudge(url, "grader", cache=tmp_path / "c.jsonl")
        j.judge_many(requests(2))
        # OPENAI_API_KEY was not sent to a non-OpenAI host (the URL's own user info goes as Basic auth)
        assert len(srv.auth) == 2 and not any(a and a.startswith("Bearer") for a in srv.auth)
        assert "pw" not in j.base_url and "pw" not in j.name and "pw" not in j.client.safe_url
    assert "sk-secret" not in (tmp_path / "c.jsonl").read_text()
