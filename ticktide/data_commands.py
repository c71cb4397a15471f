"""``ticktide data fetch|publish``: historical bars by symbol and dates (``producers.history``).

``fetch`` writes a long bars file (``date, symbol, open, high, low, close,
adj_close, volume, source``; ``.csv`` or ``.parquet``) that ``workflow run
--prices`` reads, or with ``--format wide`` a close-only wide CSV. ``publish``
puts the bars (fetched, or read from such a file with ``--input``) on
``bars.v1`` in date order. A symbol no source could serve is one line on
stderr and the others go on (``--strict``: exit 2 instead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from streaming.commandline import add_bus_option, add_config_option, add_input_option, add_symbols_option


def _fail(cmd: str, message: str) -> int:
    print(f"ticktide data {cmd}: {message}", file=sys.stderr)
    return 2


def _fetch(args: argparse.Namespace, cmd: str):
    """The History for the arguments, or an exit code after a one-line error."""
    import msgspec

    from producers.history import HistoryConfig, HistoryError, load_history, parse_sources
    from producers.history.base import INTERVALS
    from streaming.config import read_toml

    symbols = [s.strip().upper() for s in (args.symbols or "").split(",") if s.strip()]
    if not symbols:
        return _fail(cmd, "--symbols is empty (give e.g. --symbols AAPL,MSFT)")
    try:
        start, end = dt.date.fromisoformat(args.start), dt.date.fromisoformat(args.end)
    except ValueError as exc:
        return _fail(cmd, f"--start/--end: {exc} (use YYYY-MM-DD)")
    if end < start:
        return _fail(cmd, f"--end {end} is before --start {start}")
    if args.interval not in INTERVALS:
        return _fail(cmd, f"--interval {args.interval}: not one of {', '.join(INTERVALS)}")
    try:
        sources = parse_sources(args.sources)
        data = read_toml(args.config) if args.config else {}
        config = HistoryConfig.from_mapping(data.get("history", {}))
    except (OSError, ValueError, msgspec.MsgspecError) as exc:
        return _fail(cmd, str(exc))
    try:
        history = load_history(symbols, start, end, args.interval, config=config, cache_dir=args.cache_dir,
                               sources=sources, strict=args.strict)
    except HistoryError as exc:
        for line in str(exc).splitlines():
            print(f"ticktide data {cmd}: {line}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        return _fail(cmd, str(exc))
    for line in history.errors:
        print(f"ticktide data {cmd}: {line}", file=sys.stderr)
    for sym, why in history.dropped.items():
        print(f"ticktide data {cmd}: {sym}: dropped, quality below threshold: {why}", file=sys.stderr)
    for sym in history.bars:
        r, q = history.fetched[sym], history.quality[sym]
        tried = "".join(f", after {s} failed ({why})" for s, why in r.failures)
        print(f"{sym}: {q['rows']} bars from {r.source}{' (cache)' if r.from_cache else ''}{tried}; "
              f"completeness {q['completeness']:.3f}, accuracy {q['accuracy']:.3f}"
              + (f" (below threshold: {', '.join(q['breaches'])})" if q["breaches"] else ""), file=sys.stderr)
    return history


def cmd_fetch(args: argparse.Namespace) -> int:
    if not (args.out.endswith(".csv") or args.out.endswith(".parquet")):
        return _fail("fetch", f"--out {args.out}: give a .csv or .parquet file")
    if args.format == "wide" and not args.out.endswith(".csv"):
        return _fail("fetch", "--format wide writes a CSV: give --out FILE.csv")
    history = _fetch(args, "fetch")
    if isinstance(history, int):
        return history
    table = history.wide() if args.format == "wide" else history.long()
    try:
        if args.out.endswith(".parquet"):
            table.to_parquet(args.out, index=False)
        else:
            table.to_csv(args.out, index=args.format == "wide", float_format="%.10g")
    except OSError as exc:
        return _fail("fetch", f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"{len(table)} rows -> {args.out}", file=sys.stderr)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    import asyncio

    import pandas as pd

    from producers.history.publish import bar_events, publish_bars
    from streaming.bus import bus_url

    if args.input:
        try:
            long = pd.read_parquet(args.input) if args.input.endswith(".parquet") else pd.read_csv(args.input)
        except (OSError, ValueError) as exc:
            return _fail("publish", f"cannot read --input {args.input}: {exc}")
        missing = {"date", "symbol", "close"} - set(long.columns)
        if missing:
            return _fail("publish", f"--input {args.input} lacks {', '.join(sorted(missing))} "
                                    "(give a file written by `ticktide data fetch`)")
    else:
        if not (args.symbols and args.start and args.end):
            return _fail("publish", "give --symbols, --start and --end (or --input FILE)")
        history = _fetch(args, "publish")
        if isinstance(history, int):
            return history
        long = history.long()
    left_out: list[str] = []
    bars = bar_events(long, args.interval, args.close_time, left_out)
    if left_out:
        print(f"ticktide data publish: {len(left_out)} rows without a positive close are not published, e.g. "
              f"{'; '.join(left_out[:3])}", file=sys.stderr)
    url = bus_url(args.bus)
    try:
        n = asyncio.run(publish_bars(bars, url))
    except (OSError, ValueError, ConnectionError) as exc:
        return _fail("publish", f"cannot publish to {url.split('?')[0]}: {exc}")
    print(f"{n} bars -> bars.v1 on {url.split('?')[0]}", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser, required: bool = True) -> None:
    add_symbols_option(p, None, required)
    p.add_argument("--start", required=required, metavar="DATE", help="first day (YYYY-MM-DD)")
    p.add_argument("--end", required=required, metavar="DATE", help="last day (YYYY-MM-DD)")
    p.add_argument("--interval", default="1d", help="bar interval: 1d (default); 1m..12h for binance")
    p.add_argument("--sources", default=None,
                   help="the chain for every symbol, e.g. yahoo,stooq (default: yahoo, alphavantage when "
                        "ALPHAVANTAGE_API_KEY is set, stooq; binance for crypto pairs)")
    p.add_argument("--cache-dir", default=None, metavar="DIR", help="history cache (default ~/.cache/ticktide/history)")
    add_config_option(p, "TOML with a [history] table")
    p.add_argument("--strict", action="store_true", help="exit 2 when any symbol cannot be served or is dropped")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="historical bars by symbol and dates: fetch to a file, publish to bars.v1")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = sub.add_parser("fetch", help="fetch daily (or intraday crypto) bars into a CSV/Parquet file",
                       description="Fetch bars through the source chain (with the local cache), preprocess them "
                                   "with the history rules, and write a long bars file (date, symbol, open, high, "
                                   "low, close, adj_close, volume, source) or a close-only wide CSV.")
    _common(f)
    f.add_argument("--out", required=True, metavar="FILE", help="prices.csv or prices.parquet")
    f.add_argument("--format", choices=("long", "wide"), default="long", help="long bars (default) or wide closes")
    f.set_defaults(func=cmd_fetch)
    pb = sub.add_parser("publish", help="put fetched bars on bars.v1 in date order",
                        description="Fetch bars (or read --input, a file from `data fetch`) and publish them to "
                                    "bars.v1 in date order, so the live consumers run on history.")
    _common(pb, required=False)
    add_input_option(pb, "a long bars file from `data fetch`, instead of fetching", required=False)
    pb.add_argument("--close-time", default="21:00", help="UTC time stamped on daily bars (default 21:00)")
    add_bus_option(pb)
    pb.set_defaults(func=cmd_publish)
