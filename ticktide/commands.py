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
from streaming.commandline import (EMBEDDED_DEFAULT, CommandError, add_bus_option, add_config_option,
                                   add_shutdown_option, add_symbols_option, broker_unreachable, check_topic,
                                   cli_bus_url, ensure_reachable, install_stop_handlers, split_symbols,
                                   start_cli_bus, unless_stopped, unreachable)
from streaming.deadline import bounded
from streaming.config import config_error
from streaming.metrics import serve_metrics
from ticktide.processors import CONSUMERS, create_processor

log = logging.getLogger("ticktide")


# -- consume --------------------------------------------------------------------
async def _consume(args: argparse.Namespace) -> int:
    from streaming.profiles import PROFILES
    from streaming.runner import Runner, RunnerSettings

    url = cli_bus_url(args)
    processor = load_processor(args)
    connectivity.set_role(processor.name)
    profile = PROFILES[args.profile]

    def configure(bus) -> None:
        if hasattr(bus, "settings"):  # kafka://: the producer's linger and the fetch wait
            bus.settings.linger_ms = profile.linger_ms
            bus.settings.fetch_max_wait_ms = profile.fetch_max_wait_ms

    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)  # before the start: a hung broker must not hold it
    if args.exactly_once:  # the runner makes the producer transactional before it starts
        await ensure_reachable(url)
        bus = open_bus(url)
        configure(bus)
    else:  # started here, so an unusable broker is one line before the runner begins
        bus = await unless_stopped(start_cli_bus(args, configure=configure), stop)
        if bus is None:
            return 0
    serve_metrics(args.metrics_port)
    settings = RunnerSettings(group=args.group, max_records=args.max_records or profile.max_records,
                              poll_timeout_ms=profile.poll_timeout_ms, duration_s=args.duration,
                              exactly_once=args.exactly_once, instance=args.instance_id or "", freeze_heap=True,
                              commit_interval_s=args.commit_interval,
                              shutdown_timeout_s=args.shutdown_timeout)
    runner = Runner(processor, bus, settings, stop)
    try:
        await runner.run()
    except Exception as exc:
        if not broker_unreachable(exc):
            raise
        raise unreachable(bus.url, exc) from exc
    finally:
        pending = _pending(bus)
        failed = await bounded(bus.close(), max(0.5, runner.remaining_shutdown_s()))
        if failed:
            log.warning("consume %s: the bus did not close (%s); %s unacknowledged messages dropped",
                        processor.name, failed, pending)
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
        raise CommandError(config_error(args.config, exc) if args.config else str(exc),
                           "fix the config file") from exc


def _pending(bus) -> str:
    pending = getattr(bus, "pending", None)
    return f"{pending():,}" if pending else "no"


def cmd_consume(args: argparse.Namespace) -> int:
    return asyncio.run(_consume(args))


# -- subscribe ------------------------------------------------------------------
async def _subscribe(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    connectivity.set_role("subscribe")
    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)  # before the start: a hung broker must not hold it
    bus = await unless_stopped(start_cli_bus(args), stop)
    if bus is None:
        return 0
    serve_metrics(args.metrics_port)
    group = args.group or f"ticktide-subscribe-{uuid.uuid4().hex[:8]}"
    sub = bus.subscribe([args.topic], group, from_beginning=args.from_beginning)
    symbols = set(split_symbols(args.symbols))
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
    url = cli_bus_url(args)
    await ensure_reachable(url)
    bus = open_bus(url)
    settings = getattr(bus, "settings", None)
    if settings is not None:  # flags win over the URL, the catalogue and the cluster-size default
        settings.replication_factor = args.replication_factor or settings.replication_factor
        settings.min_insync_replicas = args.min_insync_replicas or settings.min_insync_replicas
    try:
        await bus.ensure_topics(list(CATALOGUE))
    finally:
        await bus.close()
    print(f"ensured {len(CATALOGUE)} topics on {bus.url.split('?')[0]}", file=sys.stderr)
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
    p.add_argument("--max-records", type=int, default=None,
                   help="records per batch (default: the profile's, 5000 throughput / 500 latency)")
    p.add_argument("--profile", choices=("throughput", "latency"), default="throughput",
                   help="throughput (default): big batches, 5 ms producer linger; latency: small batches, "
                        "no linger, short fetch waits")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                   "until SIGTERM/Ctrl-C)")
    p.add_argument("--instance-id", default=None,
                   help="name of this replica in its health reports (default: the host name)")
    p.add_argument("--exactly-once", action="store_true",
                   help="Kafka transactions: outputs, state and input offsets commit atomically, one transactional "
                        "producer per input partition fencing its previous owner (default: at-least-once)")
    p.add_argument("--commit-interval", type=float, default=None, metavar="SECONDS",
                   help="how often the state and offsets are committed (default: 0.1 with --exactly-once, where "
                        "read_committed readers wait for it; else 1)")
    add_shutdown_option(p)
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
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics and /health on this port")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_subscribe)

    p = sub.add_parser("topics", help="list the topic catalogue or create its topics on a bus",
                       description="`list` prints the topic catalogue (name, key, partitions, retention); "
                                   "`create` creates every catalogue topic on the bus (existing ones are kept).")
    p.add_argument("action", choices=["list", "create"], help="list: print the catalogue; create: create the "
                   "topics on the bus")
    add_bus_option(p)
    p.add_argument("--replication-factor", type=_positive, default=None, metavar="N",
                   help="copies of each new topic (default: the catalogue's, else 1 on one broker, 3 on three+)")
    p.add_argument("--min-insync-replicas", type=_positive, default=None, metavar="N",
                   help="copies an acks=all write waits for (default: the catalogue's, else 1, or 2 on three+)")
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
    add_shutdown_option(p)
    p.set_defaults(func=cmd_demo)
