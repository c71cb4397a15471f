"""CLI for the live side: ``ticktide simulator``, ``ticktide produce``, ``ticktide replay``.

``producers.commands`` calls :func:`register`. Each command's ``func(args)``
returns an exit code; SIGTERM/SIGINT close the sockets, flush the bus and
exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, Awaitable, Callable

from streaming.commandline import add_shutdown_option, install_stop_handlers

log = logging.getLogger(__name__)


# -- helpers -------------------------------------------------------------------
def _symbols(text: str | None) -> list[str]:
    return [s.strip().upper() for s in (text or "").split(",") if s.strip()]


def _speed(text: str) -> float:
    if text.lower() in ("max", "inf", "0"):
        return 0.0
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("speed must be >= 0 (0 or 'max' = as fast as possible)")
    return value


def recording_path(args: argparse.Namespace, command: str) -> str:
    """``--input FILE`` or the older positional FILE."""
    from streaming.commandline import CommandError

    path = getattr(args, "input", None) or getattr(args, "file", None)
    if not path:
        raise CommandError("no recording given", f"give --input FILE, e.g. {command} --input "
                           "tests/data/BINANCE.ws.1.0 --venue binance")
    return path


def add_recording_options(p: argparse.ArgumentParser, what: str) -> None:
    """The recording to read: ``--input FILE``; the positional FILE of earlier releases still works."""
    from streaming.commandline import add_input_option, input_file

    add_input_option(p, what, required=False)
    p.add_argument("file", nargs="?", metavar="FILE", type=input_file, default=None,
                   help="same as --input (older spelling)")


def _run(main: Callable[[asyncio.Event], Awaitable[int]], shutdown_timeout: float) -> int:
    async def runner() -> int:
        stop = asyncio.Event()
        # bounded: a second signal, or the bound passing, ends the process
        install_stop_handlers(stop, shutdown_timeout)
        return await main(stop)

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        return 0


async def _until(stop: asyncio.Event, duration: float | None, *tasks: asyncio.Task) -> None:
    """Wait for a signal, the duration, or any task to finish."""
    waiters = {asyncio.create_task(stop.wait()), *tasks}
    try:
        await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            if w not in tasks:
                w.cancel()


def load_validator(rules: str | None) -> Any:
    """The Validator for ``--rules FILE`` (default: producers/validation/default.toml)."""
    from producers.validation import Validator

    return Validator.from_file(rules) if rules else Validator()


async def _start_publisher(args: argparse.Namespace, command: str):
    """The bus by the one rule (--bus, $TICKTIDE_BUS, Kafka), reachable, behind the --buffer
    (None after one error line when a topic it needs is missing)."""
    from producers.publishing import open_publisher
    from streaming.commandline import cli_bus_url, ensure_reachable

    url = cli_bus_url(args)
    await ensure_reachable(url)
    return await open_publisher(url, args.buffer, command)


def _serve_metrics(port: int | None) -> None:
    if port is None:
        return
    from streaming.metrics import serve_metrics

    serve_metrics(port)


def _summary(name: str, feed) -> str:
    s = feed.stats
    return (f"{name}: frames={s.frames} ticks={s.ticks} skipped={s.skipped} dead_letters={s.dead_letters} "
            f"rejected={s.rejected} gaps={s.gaps} missing={s.missing} duplicates={s.duplicates} "
            f"connects={s.connects} reconnects={s.reconnects}")


# -- simulator -----------------------------------------------------------------
def cmd_simulator(args: argparse.Namespace) -> int:
    from producers.simulator.server import SimConfig, run_simulator

    cfg = SimConfig(symbols=_symbols(args.symbols), rate=args.rate, seed=args.seed)

    async def main(stop: asyncio.Event) -> int:
        return await run_simulator(cfg, args.host, args.port, args.duration, stop, clock=args.clock)

    return _run(main, args.shutdown_timeout)


# -- produce -------------------------------------------------------------------
def cmd_produce(args: argparse.Namespace) -> int:
    from producers.feed.connection import FeedConnection, FeedSettings
    from producers.venues import UnknownVenueError, get_adapter

    symbols = _symbols(args.symbols)
    if not symbols:
        print("ticktide produce: --symbols is empty (give e.g. --symbols BTCUSDT,ETHUSDT)", file=sys.stderr)
        return 2
    try:
        adapter = get_adapter(args.venue)
        fb_adapter = None
        if args.fallback_venue or args.fallback_url:
            fb_adapter = get_adapter(args.fallback_venue or args.venue)
    except UnknownVenueError as exc:
        print(f"ticktide produce: {exc}", file=sys.stderr)
        return 2
    try:
        load_validator(args.rules)  # fail fast on a bad rules file
    except (OSError, ValueError) as exc:
        print(f"ticktide produce: bad --rules: {exc} (fix the file)", file=sys.stderr)
        return 2
    settings = FeedSettings(silence_timeout=args.silence_timeout, backoff_max=args.backoff_max,
                            seed=args.seed)

    async def main(stop: asyncio.Event) -> int:
        from producers.publishing import finish

        bus = await _start_publisher(args, "produce")
        if bus is None:
            return 2
        _serve_metrics(args.metrics_port)
        validator = load_validator(args.rules)
        primary = FeedConnection(adapter, bus, symbols, url=args.url, validator=validator, settings=settings)
        feeds = [primary]
        if fb_adapter is not None:
            from producers.feed.failover import FailoverArbiter, FailoverFeed

            fb_label = fb_adapter.name if fb_adapter.name != adapter.name else f"{fb_adapter.name}:fallback"
            fb_symbols = _symbols(args.fallback_symbols) or symbols
            fb_validator = load_validator(args.rules)
            fallback = FeedConnection(fb_adapter, bus, fb_symbols, url=args.fallback_url,
                                      validator=fb_validator, settings=settings, venue=fb_label)
            symbol_map = dict(zip(fb_symbols, symbols)) if fb_symbols != symbols else None
            arbiter = FailoverArbiter(primary.venue, fb_label, args.failover_after, symbol_map)
            runner: Any = FailoverFeed(primary, fallback, arbiter, bus)
            feeds.append(fallback)
        else:
            runner = primary
        task = asyncio.create_task(runner.run())
        code = 0
        try:
            await _until(stop, args.duration, task)
        finally:
            if not task.done():
                await runner.stop()
            # a feed waiting for room in a full buffer (broker away) is not waited for long
            await asyncio.wait({task}, timeout=args.shutdown_timeout / 4)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1)
            elif not task.cancelled() and task.exception() is not None:
                log.error("produce: the feed failed: %s: %s", type(task.exception()).__name__, task.exception())
                code = 1
            elif not task.cancelled() and not task.result():
                code = 1  # reconnects exhausted
            await finish(bus, args.shutdown_timeout / 2, "produce")
        for f in feeds:
            print(_summary(f.venue, f), file=sys.stderr)
        return code

    return _run(main, args.shutdown_timeout)


# -- replay --------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from producers.recordings.replay import ReplayServer, replay_into_bus

    path = recording_path(args, "ticktide replay")
    try:
        load_validator(args.rules)  # fail fast on a bad rules file
    except (OSError, ValueError) as exc:
        print(f"ticktide replay: bad --rules: {exc} (fix the file)", file=sys.stderr)
        return 2

    async def main(stop: asyncio.Event) -> int:
        if args.serve_only:
            async with ReplayServer(path, args.speed, args.host, args.port) as server:
                print(f"replaying {path} on {server.url}", flush=True)
                await _until(stop, args.duration)
            return 0
        from producers.publishing import finish

        bus = await _start_publisher(args, "replay")
        if bus is None:
            return 2
        _serve_metrics(args.metrics_port)
        validator = load_validator(args.rules)
        timer = None
        if args.duration is not None:
            timer = asyncio.get_running_loop().call_later(args.duration, stop.set)
        replaying = asyncio.create_task(replay_into_bus(
            path, args.venue, bus, speed=args.speed, symbols=_symbols(args.symbols), validator=validator,
            recv_time=args.recv_time, port=args.port, stop=stop))
        try:
            await _until(stop, None, replaying)
            if not replaying.done():  # stopped: the feed may wait for room in a full buffer (broker away)
                await asyncio.wait({replaying}, timeout=args.shutdown_timeout / 4)
            if not replaying.done():
                replaying.cancel()
                await asyncio.wait({replaying}, timeout=1)
        finally:
            if timer:
                timer.cancel()
            if stop.is_set():
                await finish(bus, args.shutdown_timeout * 0.6, "replay")
            else:  # the recording ended: wait for the broker as long as it takes
                await bus.flush()
                await bus.close()
        if replaying.done() and not replaying.cancelled():
            print(_summary(f"replay {args.venue}", replaying.result()), file=sys.stderr)
        else:
            print(f"replay {args.venue}: stopped before the end of the recording", file=sys.stderr)
        return 0

    return _run(main, args.shutdown_timeout)


# -- registration ----------------------------------------------------------------
def _buffer_size(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--buffer must be at least 1 message")
    return value


def _add_buffer_option(p: argparse.ArgumentParser) -> None:
    from streaming.bus.buffered import DEFAULT_CAPACITY

    p.add_argument("--buffer", type=_buffer_size, default=DEFAULT_CAPACITY, metavar="MESSAGES",
                   help="messages held in memory while the broker is away; when full, the websocket is not "
                        f"read until there is room (default {DEFAULT_CAPACITY:,}, ~1 min of a busy feed)")


def register(sub: argparse._SubParsersAction) -> None:
    from producers.simulator import DEFAULT_RATE, DEFAULT_SEED, DEFAULT_SYMBOLS
    from producers.venues import available
    from streaming.commandline import add_bus_option, add_symbols_option, add_venue_option, input_file

    venues = available()
    p = sub.add_parser("simulator", help="run the market simulator websocket server (Binance stream format)",
                       description="Serve simulated trades and bookTicker quotes in Binance's combined-"
                                   "stream format: ws://HOST:PORT/stream?streams=btcusdt@trade/... "
                                   "(the same defaults as `ticktide demo`).")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=int, default=8765, help="listen port, 0 = ephemeral")
    add_symbols_option(p, DEFAULT_SYMBOLS)
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="messages per second per symbol")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    p.add_argument("--clock", choices=("wall", "sim"), default="wall",
                   help="event timestamps: wall clock, or simulated time from the seed")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                   "until Ctrl-C)")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_simulator)

    p = sub.add_parser("produce", help="run a live websocket producer onto ticks.v1 (with optional failover)",
                       description="Connect to a venue feed, normalize and validate ticks, publish them "
                                   "to ticks.v1 (bad frames to dlq.v1, gaps to alerts.v1).")
    add_venue_option(p, venues)
    add_symbols_option(p, None, True)
    p.add_argument("--url", default=None, help="websocket base URL (default: the venue's public endpoint)")
    add_bus_option(p)
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run "
                   "until SIGTERM/Ctrl-C)")
    p.add_argument("--rules", default=None, type=input_file, metavar="FILE",
                   help="validation rules file (default: built-in rules)")
    p.add_argument("--silence-timeout", type=float, default=30.0,
                   help="reconnect when no frame arrives for this many seconds")
    p.add_argument("--backoff-max", type=float, default=30.0, help="longest reconnect delay in seconds")
    p.add_argument("--seed", type=int, default=None, help="seed for the reconnect jitter (default: random)")
    add_venue_option(p, venues, required=False, flag="--fallback-venue")
    p.add_argument("--fallback-url", default=None, help="websocket base URL of the fallback feed")
    p.add_argument("--fallback-symbols", default=None,
                   help="the fallback venue's names for --symbols, same order (default: the same)")
    p.add_argument("--failover-after", type=float, default=5.0,
                   help="publish the fallback after the primary is silent this many seconds")
    _add_buffer_option(p)
    add_shutdown_option(p)
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("replay", help="replay a recorded websocket session through a venue adapter onto ticks.v1",
                       description="Serve a recording (hftbacktest, cryptofeed or JSON lines; gzip ok) over a "
                                   "local websocket at the recorded pace times --speed, and consume it with the "
                                   "venue's adapter and the connection manager. Every tick keeps its recorded "
                                   "event time (ts_event); --recv-time only decides ts_recv.")
    add_recording_options(p, "recorded session to replay")
    add_venue_option(p, venues)
    p.add_argument("--speed", type=_speed, default=1.0,
                   help="pace multiplier; 0 or 'max' = as fast as possible")
    add_symbols_option(p)
    add_bus_option(p)
    p.add_argument("--rules", default=None, type=input_file, metavar="FILE",
                   help="validation rules file (default: built-in rules)")
    p.add_argument("--recv-time", choices=("wall", "recorded"), default="wall",
                   help="ts_recv: the wall clock when this process receives the frame, or the recorded receive "
                        "time (reproducible output); ts_event is the recorded one either way")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port")
    p.add_argument("--serve-only", action="store_true", help="only serve the websocket, do not consume it")
    p.add_argument("--host", default="127.0.0.1", help="listen address with --serve-only")
    p.add_argument("--port", type=int, default=0, help="listen port, 0 = ephemeral")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: the "
                   "end of the recording)")
    _add_buffer_option(p)
    add_shutdown_option(p)
    p.set_defaults(func=cmd_replay)
