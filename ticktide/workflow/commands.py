"""``ticktide workflow run``: replay history through features -> portfolio -> execution -> risk."""

from __future__ import annotations

import argparse
import sys

from streaming.commandline import (EMBEDDED_DEFAULT, add_bus_option, add_config_option, add_input_option,
                                   add_symbols_option, cli_bus_url, split_symbols)


def cmd_workflow_run(args: argparse.Namespace) -> int:
    import msgspec

    from ticktide.workflow.run import run_workflow

    symbols = split_symbols(args.symbols)
    if not symbols:
        print("ticktide workflow run: --symbols is empty (give e.g. --symbols AAPL,MSFT)", file=sys.stderr)
        return 2
    bus = cli_bus_url(args)
    fetch = None
    if not args.input:
        from producers.history import parse_sources

        try:
            fetch = {"cache_dir": args.cache_dir, "sources": parse_sources(args.sources), "strict": args.strict}
        except ValueError as exc:
            print(f"ticktide workflow run: --sources: {exc}", file=sys.stderr)
            return 2
    try:
        results = run_workflow(args.input, symbols, args.start, args.end, args.out, config=args.config,
                               bus=bus, progress=not args.no_progress,
                               report=not args.no_report, benchmark=args.benchmark, fetch=fetch)
    except (OSError, ValueError, msgspec.MsgspecError) as exc:
        text = str(exc)
        hint = "" if text.endswith(")") else " (check --input, --symbols, --start/--end and --config)"
        print(f"ticktide workflow run: {text}{hint}", file=sys.stderr)
        return 2
    m = results["risk_metrics"]
    print(f"{len(results['symbols'])} symbols, {results['days']} days, {len(results['rebalances'])} rebalances, "
          f"{len(results['trades'])} trades; total return {results['total_return']:.2%}, "
          f"Sharpe {m['sharpe'] if m['sharpe'] is not None else float('nan'):.2f} "
          f"(risk-free rate {results.get('risk_free_rate', 0.0):.2%}), "
          f"risk level {results['risk_level']} -> {args.out}/results.json", file=sys.stderr)
    failed = results.get("failed_rebalances") or []
    if failed:
        reasons = sorted({f["reason"] for f in failed})
        print(f"ticktide workflow run: {len(failed)} of {len(results['rebalances'])} rebalances failed: "
              + " | ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""),
              file=sys.stderr)
        if not results.get("rebalances_ok"):
            print("ticktide workflow run: no rebalance succeeded, the account stayed in cash "
                  "(loosen the constraints named above)", file=sys.stderr)
            return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("workflow", help="historical workflow: replay prices through the live consumers",
                              description="The historical workflow: `ticktide workflow run` replays daily bars "
                                          "through the live consumers and writes results.json and report.md.")
    sub = p.add_subparsers(dest="workflow_command", metavar="ACTION", required=True)
    r = sub.add_parser(
        "run", help="replay daily bars through features, portfolio, execution and risk; write results and a report",
        description="Replay daily bars from a wide close CSV (date + one column per symbol) or a long OHLCV "
                    "CSV/Parquet through the same consumers as the live pipeline, on the embedded bus "
                    "(default) or Kafka (--bus). Without --input the bars are fetched by symbol and dates "
                    "(Yahoo, then Alpha Vantage with a key, then Stooq; Binance for crypto pairs), warm-up "
                    "included, through the local cache. Writes DIR/results.json and DIR/report.md with PNG charts.")
    add_input_option(r, "daily prices: wide close CSV or long OHLCV CSV/Parquet (default: fetch the history)",
                     "--prices", required=False)
    add_symbols_option(r, None, True)
    r.add_argument("--start", required=True, metavar="DATE", help="first day to trade (YYYY-MM-DD)")
    r.add_argument("--end", required=True, metavar="DATE", help="last day (YYYY-MM-DD)")
    add_config_option(r, "TOML with [workflow], [portfolio], [execution], [risk], [features], [alerts], [history] "
                         "tables and/or the API document's keys (risk_profile, rebalancing_frequency, ...; see README)")
    r.add_argument("--benchmark", default=None, metavar="SYMBOL",
                   help="price-file column to compare with, e.g. SPY: beta, alpha, tracking error, information "
                        "ratio, a beta-scaled crash, drawn on the equity chart (default: config benchmark)")
    r.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_bus_option(r, EMBEDDED_DEFAULT)
    r.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    r.add_argument("--no-report", action="store_true", help="write results.json only")
    r.add_argument("--sources", default=None, help="without --input: the source chain for every symbol, "
                   "e.g. yahoo,stooq (default: per symbol)")
    r.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="without --input: the history cache (default ~/.cache/ticktide/history)")
    r.add_argument("--strict", action="store_true",
                   help="without --input: fail when any symbol cannot be fetched or falls below a quality threshold")
    r.set_defaults(func=cmd_workflow_run)
