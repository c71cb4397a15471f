"""Runtime subcommands: ``consume``, ``subscribe``, ``topics``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from schemas.topics import CATALOGUE
from streaming.bus import open_bus
from streaming.commandline import add_bus_option, install_stop_handlers
from streaming.metrics import serve_metrics
from ticktide.processors import CONSUMERS, create_processor


# -- consume --------------------------------------------------------------------
async def _consume(args: argparse.Namespace) -> int:
    from streaming.runner import Runner, RunnerSettings

    from streaming.profiles import PROFILES

    processor = create_processor(args.name, args.config)
    bus = open_bus(args.bus)
    profile = PROFILES[args.profile]
    if hasattr(bus, "settings"):  # kafka://: the producer's linger and the fetch wait
        bus.settings.linger_ms = profile.linger_ms
        bus.settings.fetch_max_wait_ms = profile.fetch_max_wait_ms
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    settings = RunnerSettings(group=args.group, max_records=args.max_records or profile.max_records,
                              poll_timeout_ms=profile.poll_timeout_ms, duration_s=args.duration,
                              exactly_once=args.exactly_once, instance=args.instance_id or "", freeze_heap=True)
    try:
        await Runner(processor, bus, settings, stop).run()
    finally:
        try:
            await asyncio.wait_for(bus.close(), settings.shutdown_timeout_s)
        except asyncio.TimeoutError:
            print(f"ticktide consume {args.name}: the bus did not close in time", file=sys.stderr)
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    return asyncio.run(_consume(args))


# -- subscribe ------------------------------------------------------------------
async def _subscribe(args: argparse.Namespace) -> int:
    bus = open_bus(args.bus)
    await bus.start()
    stop = asyncio.Event()
    install_stop_handlers(stop)
    group = args.group or f"ticktide-subscribe-{uuid.uuid4().hex[:8]}"
    sub = bus.subscribe([args.topic], group, from_beginning=args.from_beginning)
    symbols = set(args.symbol or ())
    printed = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.duration if args.duration else None
    out = sys.stdout.buffer
    try:
        async for records in sub.batches(max_records=500, timeout_ms=200):
            for r in records:
                if symbols and (r.key or b"").decode() not in symbols:
                    continue
                out.write(r.value + b"\n")
                printed += 1
                if args.limit and printed >= args.limit:
                    stop.set()
                    break
            out.flush()
            if stop.is_set() or (deadline and loop.time() >= deadline):
                break
    finally:
        await sub.close()
        await bus.close()
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    return asyncio.run(_subscribe(args))


# -- topics ---------------------------------------------------------------------
async def _topics(args: argparse.Namespace) -> int:
    if args.action == "list":
        for t in CATALOGUE.values():
            kind = "compact" if t.compacted else f"retention.ms={t.retention_ms}"
            print(f"{t.name}\tkey={t.key}\tpartitions={t.partitions}\t{kind}")
        return 0
    bus = open_bus(args.bus)
    try:
        await bus.ensure_topics(list(CATALOGUE))
    finally:
        await bus.close()
    print(f"ensured {len(CATALOGUE)} topics on {bus.url}", file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    return asyncio.run(_topics(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from ticktide.demo import run_demo

    return asyncio.run(run_demo(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("consume", help="run one consumer (features, signals, risk, ...) as its own process")
    p.add_argument("name", choices=sorted(CONSUMERS), help="which consumer")
    add_bus_option(p)
    p.add_argument("--config", default=None, help="consumer config file (TOML)")
    p.add_argument("--group", default=None, help="consumer group (default: the consumer's name)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.add_argument("--max-records", type=int, default=None,
                   help="records per batch (default: the profile's, 5000 throughput / 500 latency)")
    p.add_argument("--profile", choices=("throughput", "latency"), default="throughput",
                   help="throughput (default): big batches, 5 ms producer linger; latency: small batches, "
                        "no linger, short fetch waits")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--instance-id", default=None,
                   help="stable id of this replica (default: the host name); names its Kafka transactional id")
    p.add_argument("--exactly-once", action="store_true",
                   help="Kafka transactions: outputs and input offsets commit atomically (default: at-least-once)")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("subscribe", help="tail a topic as JSON lines (e.g. signals.v1)")
    p.add_argument("topic", help="topic name, e.g. signals.v1")
    add_bus_option(p)
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest message")
    p.add_argument("--symbol", action="append", help="only this symbol's messages (repeatable)")
    p.add_argument("--limit", type=int, default=0, help="stop after N messages")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--group", default=None, help="consumer group (default: a fresh one)")
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("topics", help="list the topic catalogue or create its topics on a bus")
    p.add_argument("action", choices=["list", "create"])
    add_bus_option(p)
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("demo", help="run the whole pipeline in one process on the embedded bus and print signals")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT", help="comma-separated simulator symbols")
    p.add_argument("--rate", type=float, default=50.0, help="simulated trades per second per symbol")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    add_bus_option(p)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.set_defaults(func=cmd_demo)
