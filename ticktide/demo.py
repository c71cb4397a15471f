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
from pathlib import Path

import msgspec

from schemas.events import FeatureVector, Signal
from streaming.bus import open_bus
from streaming.commandline import cli_bus_url, ensure_reachable, install_stop_handlers, split_symbols

from producers.simulator import DEFAULT_RATE as DEMO_RATE, DEFAULT_SEED as DEMO_SEED  # noqa: E402
from producers.simulator import DEFAULT_SYMBOLS as DEMO_SYMBOLS  # noqa: E402 - shared with `simulator`

# short cooldowns, so signals keep coming for the whole run (the production default is 300 s)
DEMO_SIGNALS_CONFIG = str(Path(__file__).with_name("demo_signals.toml"))
STATUS_EVERY_S = 5.0

_signal_decoder = msgspec.json.Decoder(Signal)
_features_decoder = msgspec.json.Decoder(FeatureVector)


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


async def _print_status(bus, feed, stop: asyncio.Event, counts: Counter, every_s: float = STATUS_EVERY_S) -> None:
    """One stderr line every ``every_s``: ticks/s, features/s, signals so far, each symbol's last price."""
    sub = bus.subscribe(["features.v1"], "demo-status", from_beginning=True)
    loop = asyncio.get_running_loop()
    last_price: dict[str, float] = {}
    features = ticks_before = 0
    window_start = loop.time()
    try:
        async for records in sub.batches(max_records=500, timeout_ms=100):
            for r in records:
                fv = _features_decoder.decode(r.value)
                features += 1
                if fv.price is not None:
                    last_price[fv.symbol] = fv.price
            now = loop.time()
            if now - window_start >= every_s:
                span = now - window_start
                prices = "  ".join(f"{s} {p:,.2f}" for s, p in sorted(last_price.items()))
                print(f"ticktide demo: {(feed.stats.ticks - ticks_before) / span:,.0f} ticks/s, "
                      f"{features / span:,.0f} features/s, {sum(counts.values())} signals so far | {prices}",
                      file=sys.stderr, flush=True)
                features, ticks_before, window_start = 0, feed.stats.ticks, now
            if stop.is_set():
                break
    finally:
        await sub.close()


async def run_demo(args: argparse.Namespace) -> int:
    from producers.feed.connection import FeedConnection
    from producers.simulator.server import SimConfig, SimulatorServer
    from producers.venues import get_adapter
    from streaming.metrics import serve_metrics
    from streaming.runner import Runner, RunnerSettings
    from ticktide.processors import create_processor

    symbols = split_symbols(args.symbols, upper=True)
    url = cli_bus_url(args)
    await ensure_reachable(url)
    bus = open_bus(url)
    await bus.start()
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)

    sim = SimulatorServer(SimConfig(symbols=symbols, rate=args.rate, seed=args.seed), port=0)
    await sim.start()
    feed = FeedConnection(get_adapter("binance"), bus, symbols, url=sim.url)
    signals_config = args.config or DEMO_SIGNALS_CONFIG
    runners = [Runner(create_processor(name, config), bus,
                      RunnerSettings(poll_timeout_ms=50, shutdown_timeout_s=args.shutdown_timeout), stop)
               for name, config in (("features", None), ("signals", signals_config))]
    counts: Counter = Counter()
    print(f"ticktide demo: simulator {sim.url} -> {', '.join(symbols)} on {bus.url}; "
          f"running {args.duration:g}s (Ctrl-C stops)", file=sys.stderr, flush=True)
    tasks = [asyncio.create_task(feed.run(), name="feed")]
    tasks += [asyncio.create_task(r.run(), name=r.name) for r in runners]
    tasks.append(asyncio.create_task(_print_signals(bus, stop, counts), name="printer"))
    tasks.append(asyncio.create_task(_print_status(bus, feed, stop, counts), name="status"))
    try:
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except asyncio.TimeoutError:
            pass
        stop.set()
        await feed.stop()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), args.shutdown_timeout)
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
