"""A cache killed mid-run (SIGKILL, in a real subprocess) resumes to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import chat_examples

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cache_activations.py"


def cmd(model_dir, data, out):
    return [sys.executable, str(SCRIPT), "--model", model_dir, "--device", "cpu", "--data", str(data),
            "--out", str(out), "--sites", "resid_pre.0,resid_post.*", "--positions", "last_prompt,response_mean,all",
            "--batch-size", "2", "--shard-size", "4", "--no-progress"]


def run(args):
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def kill_after_first_shard(args, out: Path) -> None:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while not (out / "shard-00000.safetensors").exists():
            assert proc.poll() is None, "the run ended before writing a shard"
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_run_resumes_to_the_uninterrupted_cache(tiny_model_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in chat_examples(80, seed=5)))
    ref, out = tmp_path / "ref", tmp_path / "resumed"
    run(cmd(tiny_model_dir, data, ref))

    kill_after_first_shard(cmd(tiny_model_dir, data, out), out)
    assert not (out / "manifest.json").exists(), "killed too late: the run had finished"
    assert (out / "progress.json").exists()
    done_before = sorted(p.name for p in out.glob("shard-*.safetensors"))
    stamps = {n: (out / n).stat().st_mtime_ns for n in done_before}

    res = run(cmd(tiny_model_dir, data, out))
    assert "cached 80 rows" in res.stdout
    # finished shards of the killed run were kept, not recomputed
    assert {n: (out / n).stat().st_mtime_ns for n in done_before} == stamps
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp")) and not (out / "progress.json").exists()
    shards = sorted(p.name for p in ref.glob("shard-*.safetensors"))
    assert len(shards) == 20 and sorted(p.name for p in out.glob("shard-*.safetensors")) == shards
    for name in shards:
        a, b = load_file(ref / name), load_file(out / name)
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (name, k)
            assert torch.equal(a[k].view(-1).view(torch.uint8), b[k].view(-1).view(torch.uint8)), (name, k)  # bitwise
    assert (ref / "index.jsonl").read_text() == (out / "index.jsonl").read_text()
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (ref, out))
    assert ma["key"] == mb["key"] and ma["inputs"] == mb["inputs"]
