"""Benchmark the endpoint judge: N judge calls at concurrency C to the loopback judge on 127.0.0.1
(``evals.judge_loopback``, run in its own process, answering at once), cache on disk included.

    PYTHONPATH=$PWD python scripts/benchmark_judge.py --calls 20000 --concurrency 64

Prints calls/s (goal: >= 500 on 2 cores) and the client's counters. Only ever sends traffic to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--faults", default="{}", help='JSON {fault: share} for the server, e.g. {"429": 0.05}')
    args = ap.parse_args()

    from evals.judge import EndpointJudge, JudgeRequest

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    srv = subprocess.Popen([sys.executable, "-m", "evals.judge_loopback", "--faults", args.faults],
                           stdout=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        port = int(srv.stdout.readline())
        reqs = [JudgeRequest(f"Question {i}: would you like more memory?",
                             ("Yes, I would like that. " if i % 2 else "No, thank you. ") + f"Reply {i}.",
                             "wants more or persistent memory across conversations") for i in range(args.calls)]
        with tempfile.TemporaryDirectory() as tmp:
            judge = EndpointJudge(f"http://127.0.0.1:{port}/v1", "loopback", api_key="",
                                  cache=Path(tmp) / "cache.jsonl", max_requests=None, concurrency=args.concurrency)
            t0, c0 = time.perf_counter(), time.process_time()
            verdicts = judge.judge_many(reqs)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            n_cached = sum(1 for _ in open(Path(tmp) / "cache.jsonl"))
        n_err = sum(v.error is not None for v in verdicts)
        srv.terminate()
        srv.wait(10)
        server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps({"calls": args.calls, "concurrency": args.concurrency, "seconds": round(dt, 2),
                          "calls_per_s": round(args.calls / dt, 1),
                          "client_cpu_ms_per_call": round(1000 * cpu / args.calls, 3),
                          "server_cpu_ms_per_call": round(1000 * (server_cpu.ru_utime + server_cpu.ru_stime) / args.calls, 3), "verdicts": len(verdicts), "errors": n_err,
                          "cached_lines": n_cached, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                          "client": dict(judge.stats)}, indent=1))
    finally:
        if srv.poll() is None:
            srv.terminate()
            srv.wait(10)


if __name__ == "__main__":
    main()
