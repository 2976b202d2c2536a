#!/usr/bin/env python
"""Run the whole pipeline from a config: tune -> contamination, identity, probes, evals -> ablation
-> steering -> report, in one run directory. Finished stages whose inputs are unchanged are skipped.

  python scripts/run_pipeline.py --config configs/demo.toml
"""

from __future__ import annotations

import argparse
import sys
import time

from artifacts import folder_lock
from pipeline.config import ConfigError, load_config
from pipeline.runner import Pipeline, StageFailed
from pipeline.stages import build_stages, run_dir, write_config
from pipeline.summary import print_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="TOML config (see configs/)")
    ap.add_argument("--name", help="run name (default: [run].name of the config)")
    ap.add_argument("--root", help="runs root directory (default: [run].root, 'runs')")
    ap.add_argument("--only", nargs="*", help="run only these stages (their inputs must exist)")
    a = ap.parse_args(argv)
    overrides = {"run": {k: v for k, v in (("name", a.name), ("root", a.root)) if v}}
    try:
        cfg = load_config(a.config, overrides if overrides["run"] else None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.time()
    pipe = Pipeline(run_dir(cfg), build_stages(cfg))
    pipe.select(a.only)  # unknown --only names fail before anything is written
    try:
        with folder_lock(run_dir(cfg)):  # one pipeline per run directory
            write_config(cfg)
            results = pipe.run(only=a.only)
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_summary(run_dir(cfg), results, time.time() - t0)
    return 0


if __name__ == "__main__":
    from artifacts.cli import run_cli

    raise SystemExit(run_cli(main))
