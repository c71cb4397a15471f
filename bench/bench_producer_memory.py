"""Memory of a producer publishing millions of ticks on a real broker (not a test).

    scripts/kafka-local start
    .venv/bin/python bench/bench_producer_memory.py [--bus kafka://127.0.0.1:9092] [--ticks 2000000]
        [--baseline-root DIR]

Builds a recording of ``--ticks`` real ticks: the BTCUSDT trades and book
tickers of tests/data (spot_btcusdt_20240808, 37,797 ticks) repeated with
their trade ids, update ids and times moved on each time, so the feed's
sequencing sees one long session. Then runs ``ticktide replay FILE --venue
binance --speed max`` into fresh topics and samples the process's resident
memory (VmRSS) every 0.5 s until it exits. ``--baseline-root`` (another
checkout, e.g. ``git archive <commit>`` unpacked) runs the same command from
there in the same run, for a before/after.

Printed per run: RSS when 10 % of the run had passed (warm), at 50 % and at
the end, and end / warm: a producer that keeps nothing per message stays
within ±10 %.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "spot_btcusdt_20240808.ndjson.gz"


def build_recording(path: Path, ticks: int) -> int:
    lines = []
    with gzip.open(DATA, "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame or '"btcusdt@bookTicker"' in frame:
                lines.append((int(ns), json.loads(frame)))
    span_ns = lines[-1][0] - lines[0][0] + 1_000_000
    trade_ids = [f["data"]["t"] for _, f in lines if "t" in f["data"]]
    update_ids = [f["data"]["u"] for _, f in lines if "u" in f["data"]]
    trade_step = max(trade_ids) - min(trade_ids) + 1  # the next copy's ids follow on: no gap, no duplicate
    update_step = max(update_ids) - min(update_ids) + 1
    written = 0
    with path.open("w") as out:
        rep = 0
        while written < ticks:
            for ns, frame in lines:
                d = dict(frame["data"])
                if "t" in d:  # trade
                    d["t"] += rep * trade_step
                    d["T"] += rep * span_ns // 1_000_000
                    d["E"] = d.get("E", d["T"]) + rep * span_ns // 1_000_000
                else:  # bookTicker
                    d["u"] += rep * update_step
                out.write(f"{ns + rep * span_ns} {json.dumps({'stream': frame['stream'], 'data': d})}\n")
                written += 1
                if written >= ticks:
                    break
            rep += 1
    return written


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run(root: Path, recording: Path, bus: str) -> dict:
    url = f"{bus}?prefix=pmem{uuid.uuid4().hex[:6]}."
    subprocess.run([sys.executable, "-m", "ticktide.cli", "topics", "create", "--bus", url], cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, check=True, timeout=120)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ticktide.cli", "replay", str(recording), "--venue", "binance",
                             "--speed", "max", "--recv-time", "recorded", "--bus", url, "--log-level", "WARNING"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        kib = rss_kib(proc.pid)
        if kib is not None:
            samples.append((time.monotonic() - t0, kib))
        time.sleep(0.5)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0 or not samples:
        raise SystemExit(f"replay from {root} failed ({proc.returncode}):\n{err[-3000:]}")
    total = samples[-1][0]

    def at(fraction: float) -> int:
        return next(kib for t, kib in samples if t >= fraction * total)

    summary = [line for line in err.splitlines() if "ticks=" in line]
    return {"root": str(root), "seconds": total, "warm": at(0.10), "mid": at(0.50), "end": samples[-1][1],
            "peak": max(k for _, k in samples), "summary": summary[-1] if summary else ""}


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", default=os.environ.get("TICKTIDE_BENCH_BUS") or "kafka://127.0.0.1:9092")
    ap.add_argument("--ticks", type=int, default=2_000_000)
    ap.add_argument("--baseline-root", help="another checkout whose `ticktide replay` runs in the same run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "btcusdt-long.ndjson"
        n = build_recording(recording, args.ticks)
        print(f"CPU {cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; "
              f"{n:,} ticks ({recording.stat().st_size / 1e6:.0f} MB), ticktide replay --speed max")
        results = [run(ROOT, recording, args.bus)]
        if args.baseline_root:
            results.append(run(Path(args.baseline_root), recording, args.bus))
    print("| checkout | seconds | RSS at 10 % (MiB) | at 50 % | at the end | peak | end / 10 % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['root']} | {r['seconds']:.0f} | {r['warm'] / 1024:.0f} | {r['mid'] / 1024:.0f} | "
              f"{r['end'] / 1024:.0f} | {r['peak'] / 1024:.0f} | {r['end'] / r['warm']:.2f} |")
    for r in results:
        print(f"{r['root']}: {r['summary']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
