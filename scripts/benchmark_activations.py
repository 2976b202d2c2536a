#!/usr/bin/env python
"""Benchmark the activation cache against a bare forward pass, TransformerLens and nnsight.

On the same batches of the same model (default: the embedded model on the CPU) it measures tokens/s
of: a bare forward pass (``model(...)``, ``use_cache=False``, no hooks); this cache end to end
(``cache_activations`` with the hooks backend: every ``resid_post`` site, positions last_prompt and
response_mean, tokenising, reducing and writing shards); the hooks backend's forward alone;
TransformerLens ``run_with_cache`` on the same sites; an nnsight trace saving the same sites. It
warms up, repeats in interleaved rounds, takes the median, and prints each as a ratio to the bare forward pass (wall
time and CPU time: the CPU time is the steadier measure on a shared machine).

Peak memory: each size runs in a fresh subprocess that loads the model, warms up, and reports the
peak resident memory (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) above the
resident memory just before caching ``--mem-n`` examples, and the same examples repeated 4 times,
with a fixed shard size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "activations" / "data" / "demo_prompts.jsonl"
CACHE_POSITIONS = "last_prompt,response_mean"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="hub id or local directory (default: the embedded model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default=str(DEMO))
    p.add_argument("--n", type=int, default=16, help="examples per timed run")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared CPU)")
    p.add_argument("--sites", default="resid_post.*")
    p.add_argument("--mem-n", type=int, default=8, help="examples in the 1x memory run (4x runs 4 times as many)")
    p.add_argument("--mem-shard-size", type=int, default=8)
    p.add_argument("--skip", nargs="*", default=[], choices=["time", "memory", "transformer_lens", "nnsight"])
    p.add_argument("--_memory-child", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def examples(path: str, n: int, distinct: int | None = None) -> list[dict]:
    """``n`` examples cycling through the first ``distinct`` of the file (default: all), with fresh ids."""
    from artifacts import read_messages_jsonl

    base = read_messages_jsonl(path)[:distinct]
    return [{**base[i % len(base)], "id": f"{base[i % len(base)]['id']}#{i // len(base)}"} for i in range(n)]


def load(args):
    import torch

    from models import ModelSpec, load_model

    torch.set_num_threads(args.threads)
    spec = ModelSpec(**({"base": args.model} if args.model else {}), device=args.device)
    return load_model(spec)


def timed(cases: list[tuple[str, object]], repeats: int) -> list[tuple[str, float, float, float]]:
    """(name, median wall s, median CPU s, least CPU s) of each case over ``repeats`` rounds after one warm-up call each.
    Rounds interleave the cases, so a change in the machine's load hits all of them alike."""
    for _, fn in cases:
        fn()
    wall: dict[str, list[float]] = {name: [] for name, _ in cases}
    cpu: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(repeats):
        for name, fn in cases:
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return [(name, statistics.median(wall[name]), statistics.median(cpu[name]), min(cpu[name])) for name, _ in cases]


def bench_time(args) -> None:
    import torch

    from activations import cache_activations, parse_sites
    from activations.backends import make_runner
    from models import encode_chat, pad_batch

    loaded = load(args)
    exs = examples(args.data, args.n)
    tok = loaded.tokenizer
    encs = [encode_chat(tok, e["messages"]) for e in exs]
    batches = [pad_batch(encs[i:i + args.batch_size], tok.pad_token_id, "right", loaded.device)
               for i in range(0, len(encs), args.batch_size)]
    n_tok = sum(len(e) for e in encs)
    sites = parse_sites(args.sites, loaded.n_layers)

    def bare():
        with torch.no_grad():
            for b in batches:
                loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                             position_ids=b["position_ids"], use_cache=False)

    def over_batches(runner):
        def run():
            for b in batches:
                runner(b)
        return run

    tmp = tempfile.TemporaryDirectory()

    def cache():
        out = cache_activations(None, exs, args.sites, CACHE_POSITIONS, Path(tmp.name) / "c", args.batch_size,
                                loaded=loaded, progress=False)
        shutil.rmtree(out)  # so the next call recomputes rather than finds a finished cache

    cases = [("bare forward (model(...), no hooks)", bare),
             ("this cache, end to end (hooks backend)", cache),
             ("hooks backend forward only", over_batches(make_runner("hooks", loaded, sites)))]
    if "transformer_lens" not in args.skip:
        cases.append(("TransformerLens run_with_cache", over_batches(make_runner("transformer_lens", loaded, sites))))
    if "nnsight" not in args.skip:
        cases.append(("nnsight trace + save", over_batches(make_runner("nnsight", loaded, sites))))
    print(f"model {loaded.spec.slug} ({loaded.n_layers} blocks, d={loaded.d_model}) on {loaded.device}, "
          f"{torch.get_num_threads()} thread(s); {len(exs)} examples, {n_tok} tokens, batch {args.batch_size}; "
          f"sites {args.sites} ({len(sites)}), positions {CACHE_POSITIONS}; median of {args.repeats} interleaved rounds after a warm-up")
    results = timed(cases, args.repeats)
    for name, wall, cpu, least in results:
        print(f"  {name:<42} {n_tok / wall:8.1f} tok/s  wall {wall:7.2f}s  cpu {cpu:7.2f}s (least {least:6.2f}s)  "
              f"{n_tok / cpu:.1f} tok/cpu-s")
    _, w0, c0, m0 = results[0]
    print("ratio to the bare forward pass (lower is faster):")
    for name, wall, cpu, least in results[1:]:
        print(f"  {name:<42} wall x{wall / w0:5.2f}   cpu x{cpu / c0:5.2f}   least cpu x{least / m0:5.2f}")
    tmp.cleanup()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(args) -> None:
    """Cache ``args._memory_child`` examples; print JSON with the peak RSS above the pre-run RSS."""
    from activations import cache_activations

    loaded = load(args)
    with tempfile.TemporaryDirectory() as tmp:
        warm = examples(args.data, args.batch_size)
        cache_activations(None, warm, args.sites, CACHE_POSITIONS, Path(tmp) / "warm", args.batch_size,
                          shard_size=args.mem_shard_size, loaded=loaded, progress=False)
        # 4x repeats the 1x examples, so batch shapes are the same and any growth is accumulation
        exs = examples(args.data, args._memory_child, distinct=args.mem_n)
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = _rss_kib("VmRSS")
        t0 = time.perf_counter()
        cache_activations(None, exs, args.sites, CACHE_POSITIONS, Path(tmp) / "c", args.batch_size,
                          shard_size=args.mem_shard_size, loaded=loaded, progress=False)
        peak = _rss_kib("VmHWM")
    print(json.dumps({"n": len(exs), "rss_before_mib": before / 1024, "peak_mib": peak / 1024,
                      "peak_above_before_mib": (peak - before) / 1024, "seconds": time.perf_counter() - t0}))


def bench_memory(args, argv: list[str]) -> None:
    out = {}
    for mult in (1, 4):
        n = args.mem_n * mult
        cmd = [sys.executable, __file__, *argv, "--_memory-child", str(n)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            raise SystemExit(f"memory run failed:\n{res.stderr[-3000:]}")
        out[mult] = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"peak memory while caching (fresh process each; shard size {args.mem_shard_size}, batch {args.batch_size}):")
    for mult, r in out.items():
        print(f"  {mult}x = {r['n']:4d} examples: peak RSS {r['peak_mib']:8.1f} MiB, "
              f"{r['peak_above_before_mib']:7.1f} MiB above the {r['rss_before_mib']:.1f} MiB before ({r['seconds']:.1f}s)")
    print(f"  peak RSS ratio 4x/1x: {out[4]['peak_mib'] / out[1]['peak_mib']:.3f}; extra peak above baseline at 4x: "
          f"{out[4]['peak_above_before_mib'] - out[1]['peak_above_before_mib']:+.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args._memory_child is not None:
        memory_child(args)
        return 0
    if "time" not in args.skip:
        bench_time(args)
    if "memory" not in args.skip:
        bench_memory(args, argv)
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
