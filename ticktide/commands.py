"""Runtime subcommands: ``consume``, ``subscribe``, ``topics``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid

from schemas.topics import CATALOGUE
from streaming import connectivity
from streaming.bus import open_bus
from streaming.commandline import (
    add_bus_option, add_shutdown_option, broker_unreachable, install_stop_handlers, say_unreachable,
)
from streaming.deadline import bounded
from streaming.metrics import serve_metrics
from ticktide.processors import CONSUMERS, create_processor

log = logging.getLogger("ticktide")


# -- consume --------------------------------------------------------------------
async def _consume(args: argparse.Namespace) -> int:
    from streaming.runner import Runner, RunnerSettings

    processor = create_processor(args.name, args.config)
    connectivity.set_role(args.name)
    bus = open_bus(args.bus)
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)
    settings = RunnerSettings(group=args.group, max_records=args.max_records, duration_s=args.duration,
                              exactly_once=args.exactly_once, instance=args.instance_id or "",
                              shutdown_timeout_s=args.shutdown_timeout)
    runner = Runner(processor, bus, settings, stop)
    try:
        await runner.run()
    except Exception as exc:
        if not broker_unreachable(exc):
            raise
        return say_unreachable(f"consume {args.name}", bus.url, exc)
    finally:
        pending = _pending(bus)
        failed = await bounded(bus.close(), max(0.5, runner.remaining_shutdown_s()))
        if failed:
            log.warning("consume %s: the bus did not close (%s); %s unacknowledged messages dropped",
                        args.name, failed, pending)
    return 0


def _pending(bus) -> str:
    pending = getattr(bus, "pending", None)
    return f"{pending():,}" if pending else "no"


def cmd_consume(args: argparse.Namespace) -> int:
    return asyncio.run(_consume(args))


# -- subscribe ------------------------------------------------------------------
async def _subscribe(args: argparse.Namespace) -> int:
    connectivity.set_role("subscribe")
    bus = open_bus(args.bus)
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)
    try:
        await bus.start()
    except Exception as exc:
        if not broker_unreachable(exc):
            raise
        return say_unreachable("subscribe", bus.url, exc)
    group = args.group or f"ticktide-subscribe-{uuid.uuid4().hex[:8]}"
    sub = bus.subscribe([args.topic], group, from_beginning=args.from_beginning)
    symbols = set(args.symbol or ())
    printed = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.duration if args.duration else None
    out = sys.stdout.buffer

    async def tail() -> None:
        nonlocal printed
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

    reader = loop.create_task(tail())
    stopper = loop.create_task(stop.wait())
    try:
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            reader.result()
    finally:
        stopper.cancel()
        reader.cancel()
        # nothing to commit (a subscriber only reads): closing is best effort within the bound
        end = loop.time() + args.shutdown_timeout
        for close in (sub.close, bus.close):
            await bounded(close(), max(0.5, end - loop.time()))
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
    settings = getattr(bus, "settings", None)
    if settings is not None:  # flags win over the URL, the catalogue and the cluster-size default
        settings.replication_factor = args.replication_factor or settings.replication_factor
        settings.min_insync_replicas = args.min_insync_replicas or settings.min_insync_replicas
    try:
        await bus.ensure_topics(list(CATALOGUE))
    finally:
        await bus.close()
    print(f"ensured {len(CATALOGUE)} topics on {bus.url}", file=sys.stderr)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
    p.add_argument("--max-records", type=int, default=1000, help="records per batch (default 1000)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--instance-id", default=None,
                   help="stable id of this replica (default: the host name); names its Kafka transactional id")
    p.add_argument("--exactly-once", action="store_true",
                   help="Kafka transactions: outputs and input offsets commit atomically (default: at-least-once)")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("subscribe", help="tail a topic as JSON lines (e.g. signals.v1)")
    p.add_argument("topic", help="topic name, e.g. signals.v1")
    add_bus_option(p)
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest message")
    p.add_argument("--symbol", action="append", help="only this symbol's messages (repeatable)")
    p.add_argument("--limit", type=int, default=0, help="stop after N messages")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--group", default=None, help="consumer group (default: a fresh one)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics and /health on this port")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("topics", help="list the topic catalogue or create its topics on a bus")
    p.add_argument("action", choices=["list", "create"])
    add_bus_option(p)
    p.add_argument("--replication-factor", type=_positive, default=None, metavar="N",
                   help="copies of each new topic (default: the catalogue's, else 1 on one broker, 3 on three+)")
    p.add_argument("--min-insync-replicas", type=_positive, default=None, metavar="N",
                   help="copies an acks=all write waits for (default: the catalogue's, else 1, or 2 on three+)")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("demo", help="run the whole pipeline in one process on the embedded bus and print signals")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT", help="comma-separated simulator symbols")
    p.add_argument("--rate", type=float, default=50.0, help="simulated trades per second per symbol")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    add_bus_option(p)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_demo)
