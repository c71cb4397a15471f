"""``bench_pipeline.py --latency``: tick -> features -> signals latency at a fixed tick rate.

``ticktide consume features`` and ``ticktide consume signals`` run as two
processes (``--profile``, default latency) on fresh topics; ticks are sent at
``--rate`` per second for ``--seconds`` with ``ts_recv`` stamped at send time;
a reader on features.v1 and signals.v1 records, per message, receive time
minus the tick's ``ts_recv`` (FeatureVector/Signal ``ts_ingest``). Prints
p50/p99/max per topic, per 10-second window too, so a growing backlog shows
(each window's p99 larger than the one before).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np

from bench_pipeline import ROOT, SYMBOLS, make_series
from schemas.events import Tick


class _Stamp(msgspec.Struct):
    ts_ingest: int = 0


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
                    ingest = dec.decode(r.value).ts_ingest
                    if ingest:
                        out.append((now / 1e9, (now - ingest) / 1e6))
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


async def latency(args) -> int:
    from streaming.bus.kafka import KafkaBus

    bootstrap = args.bus.split("://", 1)[1].split("?", 1)[0]
    prefix = f"lat{uuid.uuid4().hex[:8]}."
    url = f"kafka://{bootstrap}?prefix={prefix}"
    bus = KafkaBus(url)
    bus.settings.linger_ms = 0
    await bus.ensure_topics(["ticks.v1", "features.v1", "signals.v1", "alerts.v1", "dlq.v1", "health.v1"])
    await bus.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = Path(tempfile.mkdtemp(prefix="ticktide-bench-latency-"))
    procs = []
    for name in ("features", "signals"):
        log = open(logs / f"{name}.log", "wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "ticktide.cli", "consume", name, "--bus", url,
                                       "--profile", args.profile, "--group", f"{prefix}{name}"],
                                      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        await asyncio.sleep(8)  # join both groups (kernels warm, partitions assigned)
        got: dict[str, list[tuple[float, float]]] = {}
        stop = asyncio.Event()
        reader = asyncio.create_task(_read(bootstrap, [f"{prefix}features.v1", f"{prefix}signals.v1"], stop, got))
        t0 = time.time()
        sent = await _send(bus, args.rate, args.seconds)
        await asyncio.sleep(5)  # let the tail arrive
        stop.set()
        await reader
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await bus.close()
    print(f"\n--latency: {sent} ticks at {args.rate:,.0f}/s for {args.seconds:.0f}s, profile {args.profile} "
          f"(features and signals as separate processes; logs {logs})")
    print("| topic | messages | p50 ms | p99 ms | max ms | p99 per 10 s window (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for topic in ("features.v1", "signals.v1"):
        rows = got.get(topic, [])
        lat = [ms for _, ms in rows]
        windows = []
        for w in range(0, int(args.seconds) + 5, 10):
            part = [ms for t, ms in rows if t0 + w <= t < t0 + w + 10]
            if part:
                windows.append(f"{_pct(part, 99):.0f}")
        print(f"| {topic} | {len(rows)} | {_pct(lat, 50):.1f} | {_pct(lat, 99):.1f} | "
              f"{max(lat) if lat else float('nan'):.1f} | {' '.join(windows)} |")
    features = len(got.get("features.v1", []))
    if features < sent:
        print(f"features.v1 received {features} of {sent}: the consumer fell behind")
    return 0
