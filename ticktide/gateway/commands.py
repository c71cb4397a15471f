"""``ticktide gateway``: serve live events (WebSocket), workflow jobs (REST) and the live page on one port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from streaming import connectivity
from streaming.commandline import (add_bus_option, add_shutdown_option, broker_unreachable, cli_bus_url,
                                   ensure_reachable, install_stop_handlers, unreachable)
from streaming.deadline import bounded

log = logging.getLogger("ticktide.gateway")


async def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from ticktide.gateway.auth import ENV_VAR, TokenStore
    from ticktide.gateway.deadline import DeadlineAppRunner
    from ticktide.gateway.hub import Limits
    from ticktide.gateway.server import create_app
    from streaming.bus import open_bus

    try:
        tokens = TokenStore.load(args.tokens_file)
    except (OSError, ValueError) as exc:
        print(f"ticktide gateway: {exc}", file=sys.stderr)
        return 2
    if not len(tokens):
        print(f"ticktide gateway: no tokens (give --tokens-file FILE or set {ENV_VAR}, e.g. "
              f"{ENV_VAR}=$(openssl rand -hex 16))", file=sys.stderr)
        return 2
    if args.queue_size < 64:
        print("ticktide gateway: --queue-size must be at least 64 (the bus is dispatched in bursts of 32)",
              file=sys.stderr)
        return 2
    prices = args.prices or os.environ.get("TICKTIDE_GATEWAY_PRICES")
    if prices and not os.path.isfile(prices):
        print(f"ticktide gateway: --prices {prices}: no such file (give a wide close CSV or long OHLCV file)",
              file=sys.stderr)
        return 2
    history = None
    if args.history_sources or args.history_config:
        from producers.history import HistoryConfig, parse_sources
        from streaming.config import read_toml

        try:
            sources = None if args.history_sources in (None, "auto") else parse_sources(args.history_sources)
            table = read_toml(args.history_config).get("history", {}) if args.history_config else {}
            HistoryConfig.from_mapping(table)  # a bad table fails now, not in every job
        except (OSError, ValueError) as exc:
            print(f"ticktide gateway: history: {exc}", file=sys.stderr)
            return 2
        history = {"sources": sources, "cache_dir": args.history_cache_dir, "config": table}
    if not prices and history is None:
        log.warning("no --prices file and no --history-sources: POST /workflows answers 503")
    if args.request_timeout <= 0 or args.auth_timeout <= 0:
        print("ticktide gateway: --request-timeout and --auth-timeout must be positive seconds", file=sys.stderr)
        return 2
    limits = Limits(queue_size=args.queue_size, max_frame_bytes=args.max_frame_bytes,
                    max_subscriptions=args.max_subscriptions,
                    max_connections_per_token=args.max_connections_per_token, auth_timeout_s=args.auth_timeout)
    url = cli_bus_url(args, "ticktide gateway")
    await ensure_reachable(url)
    connectivity.set_role("gateway")
    bus = open_bus(url)
    app = create_app(tokens, bus=bus, prices=prices, limits=limits, max_running_jobs=args.max_running_jobs,
                     max_queued_jobs=args.max_queued_jobs, group=args.group, jobs_dir=args.jobs_dir,
                     history=history)
    runner = DeadlineAppRunner(app, request_timeout_s=args.request_timeout,
                               access_log=logging.getLogger("ticktide.gateway.access") if args.access_log else None)
    try:
        await runner.setup()  # starts the bus
    except Exception as exc:
        if not broker_unreachable(exc):
            raise
        raise unreachable(bus.url, exc) from exc
    site = web.TCPSite(runner, args.host, args.port, backlog=2048)
    try:
        await site.start()
    except OSError as exc:
        print(f"ticktide gateway: cannot listen on {args.host}:{args.port}: {exc.strerror} "
              "(choose another --port, or stop what uses it)", file=sys.stderr)
        await runner.cleanup()
        return 2
    port = runner.addresses[0][1] if runner.addresses else args.port
    log.info("gateway listening on http://%s:%d (%d tokens, bus %s)", args.host, port, len(tokens),
             bus.url.split("?")[0])
    stop = asyncio.Event()
    install_stop_handlers(stop, args.shutdown_timeout)
    await stop.wait()
    log.info("gateway stopping")
    failed = await bounded(runner.cleanup(), args.shutdown_timeout * 0.9)
    if failed:
        log.warning("gateway: closing did not finish (%s); exiting anyway", failed)
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="serve live events over WebSocket, workflow jobs over REST and a live page",
                       description="One HTTP port: WebSocket /ws (authenticate, subscribe to topics and symbols; "
                                   "docs/gateway.md), REST /workflows (historical workflow jobs), /metrics and "
                                   "the live page at /. Clients authenticate with a bearer token of 16+ "
                                   "characters from --tokens-file or $TICKTIDE_GATEWAY_TOKENS.")
    add_bus_option(p)
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0 picks a free one)")
    p.add_argument("--tokens-file", default=None,
                   help="bearer tokens, one per line (also $TICKTIDE_GATEWAY_TOKENS, comma-separated)")
    p.add_argument("--prices", default=None,
                   help="prices file POST /workflows runs on (also $TICKTIDE_GATEWAY_PRICES)")
    p.add_argument("--history-sources", default=None, metavar="SOURCES",
                   help="let POST /workflows run any symbols, fetched by this chain (e.g. yahoo,stooq; 'auto' "
                        "for the per-symbol default) through the history cache")
    p.add_argument("--history-config", default=None, metavar="FILE",
                   help="TOML with a [history] table (source URLs, API key, quality); implies fetching")
    p.add_argument("--history-cache-dir", default=None, metavar="DIR",
                   help="history cache for fetched prices (default ~/.cache/ticktide/history)")
    p.add_argument("--queue-size", type=int, default=1024, help="frames queued per connection before it is "
                   "disconnected as slow (default 1024)")
    p.add_argument("--max-frame-bytes", type=int, default=16384, help="largest client frame (default 16384)")
    p.add_argument("--max-subscriptions", type=int, default=256, help="subscriptions per connection (default 256)")
    p.add_argument("--max-connections-per-token", type=int, default=32, help="open connections per token "
                   "(default 32)")
    p.add_argument("--max-running-jobs", type=int, default=2, help="workflow jobs run at once (default 2)")
    p.add_argument("--max-queued-jobs", type=int, default=32, help="workflow jobs waiting (default 32)")
    p.add_argument("--jobs-dir", default=None,
                   help="keep workflow jobs and their results in this directory, across restarts "
                        "(default: in memory only)")
    p.add_argument("--group", default=None, help="consumer group (default: a fresh one per instance)")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request (never tokens)")
    p.add_argument("--request-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close a connection that has not sent a whole request line and headers by then (default 10)")
    p.add_argument("--auth-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="close a WebSocket that has not sent its auth frame by then (default 5)")
    add_shutdown_option(p)
    p.set_defaults(func=cmd_gateway)


def main(argv: list[str] | None = None) -> int:
    """``python -m ticktide.gateway.commands ...`` (the same as ``ticktide gateway ...``)."""
    from ticktide.cli import main as cli_main

    return cli_main(["gateway", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
