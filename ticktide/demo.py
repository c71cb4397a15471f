"""``ticktide demo``: the walking skeleton in one process.

market simulator (real websocket on 127.0.0.1, Binance format)
  -> binance adapter + connection manager -> ticks.v1
  -> features consumer -> features.v1 -> signals consumer -> signals.v1
  -> printed here as they arrive.

Every stage is the same code that runs as its own process against Kafka;
only the bus is the embedded one (unless ``--bus`` says otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

import msgspec

from schemas.events import Signal
from streaming.bus import open_bus
from streaming.commandline import install_stop_handlers
from ticktide.processors import create_processor
from streaming.metrics import serve_metrics
from streaming.runner import Runner, RunnerSettings

_signal_decoder = msgspec.json.Decoder(Signal)


def format_signal(sig: Signal) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(sig.ts_event / 1e9))
    return (f"{clock} {sig.symbol:<8} {sig.type:<16} {sig.action:<14} {sig.urgency:<6} "
            f"strength={sig.strength:6.2f}  {sig.reason}")


async def _print_signals(bus, stop: asyncio.Event, counts: Counter) -> None:
    sub = bus.subscribe(["signals.v1"], "demo-printer", from_beginning=True)
    try:
        async for records in sub.batches(max_records=200, timeout_ms=100):
            for r in records:
                sig = _signal_decoder.decode(r.value)
                counts[sig.type] += 1
                print(format_signal(sig), flush=True)
            if stop.is_set():
                break
    finally:
        await sub.close()


async def run_demo(args: argparse.Namespace) -> int:
    from producers.feed.connection import FeedConnection
    from producers.simulator.server import SimConfig, SimulatorServer
    from producers.venues import get_adapter

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    bus = open_bus(args.bus)
    await bus.start()
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop)

    sim = SimulatorServer(SimConfig(symbols=symbols, rate=args.rate, seed=args.seed), port=0)
    await sim.start()
    feed = FeedConnection(get_adapter("binance"), bus, symbols, url=sim.url)
    runners = [Runner(create_processor(name), bus, RunnerSettings(poll_timeout_ms=50), stop)
               for name in ("features", "signals")]
    counts: Counter = Counter()
    print(f"ticktide demo: simulator {sim.url} -> {', '.join(symbols)} on {bus.url}; "
          f"running {args.duration:g}s (Ctrl-C stops)", file=sys.stderr, flush=True)
    tasks = [asyncio.create_task(feed.run(), name="feed")]
    tasks += [asyncio.create_task(r.run(), name=r.name) for r in runners]
    tasks.append(asyncio.create_task(_print_signals(bus, stop, counts), name="printer"))
    try:
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except asyncio.TimeoutError:
            pass
        stop.set()
        await feed.stop()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    finally:
        await sim.close()
        await bus.close()
    failures = [(t.get_name(), r) for t, r in zip(tasks, results) if isinstance(r, BaseException)]
    for name, exc in failures:
        print(f"ticktide demo: {name} failed: {exc!r}", file=sys.stderr)
    ticks = feed.stats.ticks
    summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
    print(f"ticktide demo: {ticks} ticks normalized, {sum(counts.values())} signals ({summary})",
          file=sys.stderr)
    return 1 if failures else 0
