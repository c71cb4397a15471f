"""``bench_pipeline.py --latency``: tick -> features -> signals latency at a fixed tick rate.

``ticktide consume features`` and ``ticktide consume signals`` run as two
processes (``--profile``, default latency) on fresh topics; ticks are sent at
``--rate`` per second for ``--seconds`` with ``ts_recv`` stamped at send time;
a reader on features.v1 and signals.v1 records, per message, receive time
minus the tick's ``ts_recv`` (FeatureVector/Signal ``ts_ingest``); it reads
ticks.v1 too, the floor that no consumer can beat (producer -> broker ->
reader on the same machine). Prints p50/p99/max per topic, per 10-second
window too, so a growing backlog shows (each window's p99 larger than the one
before).

Variants, in rotated order, ``--repeat`` times: ``ticktide``; ``passthrough``,
the same two hops made of bare aiokafka copies (bench/pipeline_contenders.py
with the profile's linger, fetch wait and batch size), the latency a Python
consumer on this client, broker and machine gets without any work; and
``baseline`` (``--baseline-root``), another checkout's consumers.

The first ``--warmup`` seconds of ticks (default 5) are sent at the same rate but
reported on their own row: they include the groups' first fetches and the
producers' first metadata requests. The signals consumer runs with its
cooldowns at 1 s of event time (``SIGNALS_CONFIG``): with the default 300 s a minute
of ticks gives a few dozen signals, too few for a p99.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np

from bench_pipeline import ROOT, SYMBOLS, make_series, stop_processes
from schemas.events import Tick
from streaming.profiles import PROFILES


TOPICS = ("ticks.v1", "features.v1", "signals.v1")
SIGNALS_CONFIG = """# bench: every rule, 1 s (event time) cooldowns, so signals flow all the time
cooldown_s = 1
[rules.breakout]
windows = [20, 50]
"""


class _Stamp(msgspec.Struct):
    ts_ingest: int = 0  # FeatureVector, Signal
    ts_recv: int = 0  # Tick: the row ticks.v1 is the floor (producer -> broker -> reader, no consumer)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


async def _read(bootstrap: str, topics: list[str], stop: asyncio.Event,
                got: dict[str, list[tuple[float, float]]]) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                fetch_max_wait_ms=5, group_id=f"bench-latency-reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    dec = msgspec.json.Decoder(_Stamp)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50, max_records=5000)
            now = time.time_ns()
            for tp, recs in batch.items():
                out = got.setdefault(tp.topic.split(".", 1)[1], [])
                for r in recs:
                    stamp = dec.decode(r.value)
                    ingest = stamp.ts_ingest or stamp.ts_recv
                    if ingest:
                        out.append((ingest / 1e9, (now - ingest) / 1e6))
    finally:
        await consumer.stop()


async def _send(bus, rate: float, seconds: float) -> int:
    ps, qs = make_series(int(rate * seconds) + 10)
    enc = msgspec.json.Encoder()
    start = time.monotonic()
    sent = 0
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate))
        if due > sent:
            now = time.time_ns()
            keys, values = [], []
            for j in range(sent, due):
                s, k = j % len(SYMBOLS), j // len(SYMBOLS)
                tick = Tick(symbol=SYMBOLS[s], venue="BINANCE", kind="trade", ts_event=now, ts_recv=now,
                            price=float(ps[s, k]), size=float(qs[s, k]), side="buy")
                keys.append(SYMBOLS[s].encode())
                values.append(enc.encode(tick))
            await bus.publish_batch("ticks.v1", keys, values)
            sent = due
            if len(bus._pending) > 200:
                await bus.flush()
        await asyncio.sleep(0.001)
    await bus.flush()
    return sent


async def _one_run(args, root: str) -> tuple[int, float, dict[str, list[tuple[float, float]]], Path]:
    """One run of the two consumers from the checkout ``root``: (ticks sent, start of the
    measured part, per topic (ingest time, latency ms), the logs' folder)."""
    from streaming.bus.kafka import KafkaBus

    bootstrap = args.bus.split("://", 1)[1].split("?", 1)[0]
    prefix = f"lat{uuid.uuid4().hex[:8]}."
    url = f"kafka://{bootstrap}?prefix={prefix}"
    bus = KafkaBus(url)
    bus.settings.linger_ms = 0
    await bus.ensure_topics(["ticks.v1", "features.v1", "signals.v1", "alerts.v1", "dlq.v1", "health.v1"])
    await bus.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT if root == "passthrough" else root)}
    logs = Path(tempfile.mkdtemp(prefix="ticktide-bench-latency-"))
    procs = []
    (logs / "signals.toml").write_text(SIGNALS_CONFIG)
    for name, source in (("features", "ticks.v1"), ("signals", "features.v1")):
        log = open(logs / f"{name}.log", "wb")
        if root == "passthrough":  # two bare aiokafka hops: ticks -> "features" -> "signals", copies
            profile = PROFILES[args.profile]
            cmd = [sys.executable, str(ROOT / "bench" / "pipeline_contenders.py"), "passthrough",
                   "--bootstrap", bootstrap, "--source", prefix + source, "--sink", f"{prefix}{name}.v1",
                   "--group", f"{prefix}{name}", "--max-records", str(profile.max_records),
                   "--linger-ms", str(profile.linger_ms), "--fetch-max-wait-ms", str(profile.fetch_max_wait_ms)]
        else:
            config = ["--config", str(logs / "signals.toml")] if name == "signals" else []
            cmd = [sys.executable, "-m", "ticktide.cli", "consume", name, "--bus", url,
                   "--profile", args.profile, "--group", f"{prefix}{name}", *config]
        procs.append(subprocess.Popen(cmd, cwd=ROOT if root == "passthrough" else root, env=env, stdout=log,
                                      stderr=subprocess.STDOUT))
    try:
        await asyncio.sleep(8)  # join both groups (kernels warm, partitions assigned)
        got: dict[str, list[tuple[float, float]]] = {}
        stop = asyncio.Event()
        reader = asyncio.create_task(_read(bootstrap, [f"{prefix}{t}" for t in TOPICS], stop, got))
        t0 = time.time() + args.warmup  # the measured part starts after the warm-up
        sent = await _send(bus, args.rate, args.seconds + args.warmup)
        await asyncio.sleep(5)  # let the tail arrive
        stop.set()
        await reader
    finally:
        stop_processes(procs)
        await bus.close()
    return sent, t0, got, logs


def _report(args, label: str, sent: int, t0: float, got: dict[str, list[tuple[float, float]]], logs: Path) -> None:
    print(f"\n--latency, {label}: {sent} ticks at {args.rate:,.0f}/s for {args.warmup:.0f}+{args.seconds:.0f}s, "
          f"profile {args.profile} (features and signals as separate processes, signals with 1 s cooldowns; "
          f"logs {logs})")
    print("| topic | messages | p50 ms | p99 ms | max ms | p99 per 10 s window (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for topic in TOPICS:
        warm = [ms for t, ms in got.get(topic, []) if t < t0]
        rows = [(t, ms) for t, ms in got.get(topic, []) if t >= t0]
        if warm:
            print(f"| {topic}, first {args.warmup:.0f} s (warm-up, not counted) | {len(warm)} | "
                  f"{_pct(warm, 50):.1f} | {_pct(warm, 99):.1f} | {max(warm):.1f} | |")
        lat = [ms for _, ms in rows]
        windows = []
        for w in range(0, int(args.seconds) + 5, 10):
            part = [ms for t, ms in rows if t0 + w <= t < t0 + w + 10]
            if part:
                windows.append(f"{_pct(part, 99):.0f}")
        print(f"| {topic} | {len(rows)} | {_pct(lat, 50):.1f} | {_pct(lat, 99):.1f} | "
              f"{max(lat) if lat else float('nan'):.1f} | {' '.join(windows)} |")
    features = len(got.get("features.v1", []))
    if len(got.get("signals.v1", [])) < 100:
        print("signals.v1: fewer than 100 signals, the p99 above means little")
    if features < sent:
        print(f"features.v1 received {features} of {sent}: the consumer fell behind")


async def latency(args) -> int:
    """Each variant (this checkout; ``--baseline-root`` too when given) ``--repeat`` times, rotated."""
    variants = [("ticktide", str(ROOT)), ("passthrough", "passthrough")]
    variants += [("baseline", args.baseline_root)] if args.baseline_root else []
    summary: dict[str, list[str]] = {label: [] for label, _ in variants}
    for run in range(args.repeat):
        for label, root in variants[run % len(variants):] + variants[:run % len(variants)]:
            sent, t0, got, logs = await _one_run(args, root)
            _report(args, label, sent, t0, got, logs)
            p99 = [_pct([ms for t, ms in got.get(topic, []) if t >= t0], 99) for topic in TOPICS]
            summary[label].append(" / ".join(f"{v:.1f}" for v in p99))
    print("\n| variant | p99 ms tick->reader (no consumer) / tick->feature / tick->signal, each run |")
    print("| --- | --- |")
    for label, runs in summary.items():
        print(f"| {label} | {' · '.join(runs)} |")
    return 0
