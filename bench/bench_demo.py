"""`ticktide demo` liveliness (issue 15): time from the banner to the first signal (warm Numba
cache), signals over the run and the longest silence between them, with the demo's signal config
(short cooldowns) against the production default (300 s cooldowns) measured in the same run.

    .venv/bin/python bench/bench_demo.py [--duration 30] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(duration: float, config: str | None) -> dict:
    cmd = [sys.executable, "-m", "ticktide.cli", "demo", "--duration", str(duration)]
    if config:
        cmd += ["--config", config]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("TICKTIDE_BUS", None)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    banner = None
    signals: list[float] = []
    status = 0
    for line in proc.stdout:
        now = time.monotonic()
        if banner is None and "running" in line and "ticktide demo:" in line:
            banner = now
        elif "ticks/s" in line:
            status += 1
        elif line[:2].isdigit() and line[2] == ":":
            signals.append(now)
    proc.wait()
    end = time.monotonic()
    marks = [banner, *signals, end] if banner else signals
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    return {"first": (signals[0] - banner) if signals and banner else float("nan"), "signals": len(signals),
            "longest_silence": max(gaps) if gaps else float("nan"), "status_lines": status}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write("cooldown_s = 300\n")  # the production default, as before this issue
        baseline_config = fh.name
    run(5, None)  # warm the Numba cache first: the target is a warm start
    print(f"ticktide demo, {args.duration:g} s per run, {args.repeat} runs each (warm cache)")
    print(f"{'config':<22} {'first signal s':>15} {'signals':>8} {'longest silence s':>18} {'status lines':>13}")
    results = {}
    for name, config in (("demo (short cooldowns)", None), ("default (300 s)", baseline_config)):
        runs = [run(args.duration, config) for _ in range(args.repeat)]
        results[name] = runs
        for r in runs:
            print(f"{name:<22} {r['first']:>15.2f} {r['signals']:>8d} {r['longest_silence']:>18.1f} "
                  f"{r['status_lines']:>13d}")
    demo, base = results["demo (short cooldowns)"], results["default (300 s)"]
    mean = lambda runs, k: sum(r[k] for r in runs) / len(runs)  # noqa: E731
    print(f"signals per run: {mean(demo, 'signals'):.0f} vs {mean(base, 'signals'):.0f} "
          f"({mean(demo, 'signals') / max(mean(base, 'signals'), 1):.1f}x); longest silence "
          f"{mean(demo, 'longest_silence'):.1f} s vs {mean(base, 'longest_silence'):.1f} s")
    os.unlink(baseline_config)


if __name__ == "__main__":
    main()
