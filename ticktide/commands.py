"""Runtime subcommands: ``consume``, ``subscribe``, ``topics``, ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from schemas.topics import CATALOGUE
from streaming.bus import open_bus
from streaming.commandline import (EMBEDDED_DEFAULT, CommandError, add_bus_option, add_config_option,
                                   add_symbols_option, check_topic, cli_bus_url, ensure_reachable,
                                   install_stop_handlers, split_symbols, start_cli_bus)
from streaming.metrics import serve_metrics
from ticktide.processors import CONSUMERS, create_processor


# -- consume --------------------------------------------------------------------
async def _consume(args: argparse.Namespace) -> int:
    from streaming.runner import Runner, RunnerSettings

    url = cli_bus_url(args)
    processor = load_processor(args)
    if args.exactly_once:  # the runner makes the producer transactional before it starts
        await ensure_reachable(url)
        bus = open_bus(url)
    else:  # started here, so an unusable broker is one line before the runner begins
        bus = await start_cli_bus(args)
    serve_metrics(args.metrics_port)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    settings = RunnerSettings(group=args.group, max_records=args.max_records, duration_s=args.duration,
                              exactly_once=args.exactly_once, instance=args.instance_id or "")
    try:
        await Runner(processor, bus, settings, stop).run()
    finally:
        try:
            await asyncio.wait_for(bus.close(), settings.shutdown_timeout_s)
        except asyncio.TimeoutError:
            print(f"ticktide consume {processor.name}: the bus did not close in time", file=sys.stderr)
    return 0


def load_processor(args: argparse.Namespace):
    """The consumer ``args.name`` (or ``--processor module:Class``) with its ``--config``."""
    import msgspec

    if bool(args.name) == bool(args.processor):
        raise CommandError("give a consumer NAME or --processor MODULE:CLASS, not both or neither",
                           f"e.g. ticktide consume features; NAME is one of {', '.join(sorted(CONSUMERS))}")
    try:
        return create_processor(args.processor or args.name, args.config)
    except ImportError as exc:
        raise CommandError(f"cannot import {exc.name or exc}", "check the module path; a plug-in module must be "
                           "importable (installed, or under the current directory)") from exc
    except (ValueError, TypeError, KeyError, msgspec.MsgspecError) as exc:
        raise CommandError(f"bad config {args.config}: {exc}" if args.config else str(exc),
                           "fix the config file") from exc


def cmd_consume(args: argparse.Namespace) -> int:
    return asyncio.run(_consume(args))


# -- subscribe ------------------------------------------------------------------
async def _subscribe(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    bus = await start_cli_bus(args)
    stop = asyncio.Event()
    install_stop_handlers(stop)
    group = args.group or f"ticktide-subscribe-{uuid.uuid4().hex[:8]}"
    sub = bus.subscribe([args.topic], group, from_beginning=args.from_beginning)
    symbols = set(split_symbols(args.symbols))
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
    url = cli_bus_url(args)
    await ensure_reachable(url)
    bus = open_bus(url)
    try:
        await bus.ensure_topics(list(CATALOGUE))
    finally:
        await bus.close()
    print(f"ensured {len(CATALOGUE)} topics on {bus.url.split('?')[0]}", file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    return asyncio.run(_topics(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from ticktide.demo import run_demo

    return asyncio.run(run_demo(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("consume", help="run one consumer (features, signals, risk, ...) as its own process",
                       description="Run one consumer as its own process: read its input topics from the bus, "
                                   "publish its outputs, commit offsets and keep its state in a changelog. "
                                   "NAME is a built-in consumer; --processor module:Class runs your own "
                                   "streaming.processor.Processor instead (docs/extending.md).")
    p.add_argument("name", nargs="?", choices=sorted(CONSUMERS), metavar="NAME",
                   help=f"built-in consumer: {', '.join(sorted(CONSUMERS))}")
    p.add_argument("--processor", default=None, metavar="MODULE:CLASS",
                   help="your own Processor subclass (or a function returning one) instead of NAME")
    add_bus_option(p)
    add_config_option(p, "consumer config file (TOML; passed to --processor when given)")
    p.add_argument("--group", default=None, help="consumer group (default: the consumer's name)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.add_argument("--max-records", type=int, default=1000, help="records per batch")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                   "until SIGTERM/Ctrl-C)")
    p.add_argument("--instance-id", default=None,
                   help="stable id of this replica (default: the host name); names its Kafka transactional id")
    p.add_argument("--exactly-once", action="store_true",
                   help="Kafka transactions: outputs and input offsets commit atomically (default: at-least-once)")
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("subscribe", help="tail a topic as JSON lines (e.g. signals.v1)",
                       description="Print every message of one topic as a JSON line on stdout, as it arrives, "
                                   "until Ctrl-C, --limit or --duration. `ticktide topics list` shows the topics.")
    p.add_argument("topic", help="topic name, e.g. signals.v1")
    add_bus_option(p)
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest message")
    add_symbols_option(p, None, False, "--symbol")
    p.add_argument("--limit", type=int, default=0, help="stop after N messages (0 = no limit)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                   "until Ctrl-C)")
    p.add_argument("--group", default=None, help="consumer group (default: a fresh one)")
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("topics", help="list the topic catalogue or create its topics on a bus",
                       description="`list` prints the topic catalogue (name, key, partitions, retention); "
                                   "`create` creates every catalogue topic on the bus (existing ones are kept).")
    p.add_argument("action", choices=["list", "create"], help="list: print the catalogue; create: create the "
                   "topics on the bus")
    add_bus_option(p)
    p.set_defaults(func=cmd_topics)

    from ticktide.demo import DEMO_RATE, DEMO_SEED, DEMO_SYMBOLS

    p = sub.add_parser("demo", help="run the whole pipeline in one process on the embedded bus and print signals",
                       description="Simulator -> Binance adapter -> ticks.v1 -> features -> signals, all in this "
                                   "process on the embedded bus; prints each signal as it arrives and a status "
                                   "line every 5 s on stderr.")
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run")
    add_symbols_option(p, DEMO_SYMBOLS)
    p.add_argument("--rate", type=float, default=DEMO_RATE, help="simulated trades per second per symbol")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help="simulator seed")
    add_config_option(p, "signals config (TOML)")
    add_bus_option(p, EMBEDDED_DEFAULT)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.set_defaults(func=cmd_demo)
