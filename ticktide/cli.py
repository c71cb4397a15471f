"""The ``ticktide`` command line.

Each area registers its own subcommands: a module in ``COMMAND_MODULES``
exposes ``register(subparsers)`` which adds parsers whose ``func(args)``
returns an exit code. Keeping registration beside the code keeps this file
small and lets each package own its CLI. This file adds what every
subcommand shares: ``--log-level`` (before or after the subcommand), a
description and an example in ``--help``, defaults shown, and one error
style: an expected failure is one line ``ticktide <command>: what (fix)``
and a non-zero exit; a traceback only with ``--log-level DEBUG``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tomllib

from streaming.commandline import CommandError, CommandParser, HelpFormatter

COMMAND_MODULES = (
    "ticktide.commands",
    "producers.commands",
    "consumers.features.commands",
    "consumers.signals.commands",
    "consumers.risk.commands",
    "consumers.alerts.commands",
    "ticktide.gateway.commands",
    "ticktide.workflow.commands",
    "ticktide.optimize",
    "ticktide.data_commands",
)

# commands whose output is the point: keep the log to warnings unless asked
QUIET_COMMANDS = {"demo", "subscribe", "normalize", "features", "signals", "risk", "workflow", "topics", "stress",
                  "alerts-send", "optimize", "data"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_HELP = "DEBUG, INFO, WARNING or ERROR (default: INFO for services, WARNING for tools; DEBUG shows tracebacks)"

# one example per subcommand, shown at the end of its --help
EXAMPLES = {
    "consume": "ticktide consume features --bus kafka://localhost:9092 --metrics-port 9100",
    "subscribe": "ticktide subscribe signals.v1 --bus kafka://localhost:9092 --symbols BTCUSDT --limit 10",
    "topics": "ticktide topics create --bus kafka://localhost:9092",
    "demo": "ticktide demo --duration 30",
    "normalize": "ticktide normalize tests/data/BINANCE.ws.1.0 --venue binance --dlq dead.jsonl > ticks.jsonl",
    "simulator": "ticktide simulator --port 8765 --symbols BTCUSDT,ETHUSDT",
    "produce": "ticktide produce --venue binance --symbols BTCUSDT,ETHUSDT --bus kafka://localhost:9092",
    "replay": "ticktide replay tests/data/BINANCE.ws.1.0 --venue binance --speed max --bus kafka://localhost:9092",
    "features": "ticktide features --input tests/data/stock_prices_20.csv --format csv > features.csv",
    "signals": "ticktide signals --input features.jsonl --config consumers/signals/signals.example.toml",
    "risk": "ticktide risk --prices tests/data/stock_prices_20.csv --weights weights.json --pretty",
    "stress": "ticktide stress --portfolio demo --bus kafka://localhost:9092 --pretty",
    "alerts-send": "ticktide alerts-send --config alerts.toml --severity warning",
    "gateway": "TICKTIDE_GATEWAY_TOKENS=$(openssl rand -hex 16) ticktide gateway --bus kafka://localhost:9092",
    "workflow": "ticktide workflow run --prices tests/data/stock_prices_20.csv --symbols AAPL,MSFT "
                "--start 2021-01-04 --end 2021-12-31 --out out/",
    "optimize": "ticktide optimize --prices tests/data/stock_prices_20.csv --symbols AAPL,MSFT,JPM,XOM,GE "
                "--end 2017-12-29 --objective min_variance",
    "data": "ticktide data fetch --symbols AAPL,MSFT --start 2022-01-01 --end 2023-12-31 --out prices.csv",
    "data fetch": "ticktide data fetch --symbols AAPL,MSFT --start 2022-01-01 --end 2023-12-31 --out prices.csv",
    "data publish": "ticktide data publish --symbols BTCUSDT --start 2024-01-01 --end 2024-03-31 "
                    "--bus kafka://localhost:9092",
    "workflow run": "ticktide workflow run --prices tests/data/stock_prices_20.csv --symbols AAPL,MSFT "
                    "--start 2021-01-04 --end 2021-12-31 --out out/",
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def iter_commands(parser: argparse.ArgumentParser, prefix: str = ""):
    """(name, parser) for every subcommand, nested ones (``workflow run``) included."""
    for name, sub in _subparsers(parser).items():
        full = f"{prefix}{name}"
        yield full, sub
        yield from iter_commands(sub, full + " ")


def _finish(name: str, p: argparse.ArgumentParser) -> None:
    """What every subcommand shares, added after its module registered it."""
    p.formatter_class = HelpFormatter
    if not p.description:
        help_text = next((a.help for a in _parent_actions.get(name, ())), None)
        p.description = (help_text[0].upper() + help_text[1:] + ".") if help_text else None
    example = EXAMPLES.get(name)
    if example and not (p.epilog and "example" in p.epilog):
        p.epilog = f"example:\n  {example}"
    if "--log-level" not in p._option_string_actions:
        p.add_argument("--log-level", default=argparse.SUPPRESS, type=str.upper, choices=LOG_LEVELS,
                       metavar="LEVEL", help=LOG_LEVEL_HELP)
    p.set_defaults(command_name=p.prog)


_parent_actions: dict[str, list] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="ticktide", formatter_class=HelpFormatter,
        description="Event-driven streaming for quantitative trading.",
        epilog="example:\n  ticktide demo            # the whole pipeline in one process\n"
               "  ticktide COMMAND --help  # what a command does, its options and an example",
    )
    parser.add_argument("--log-level", default=None, type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
                        help=LOG_LEVEL_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # an area not built yet; a missing third-party dependency is a real error
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue
            raise
        module.register(sub)
    _parent_actions.clear()
    _collect_help(parser)
    for full, p in iter_commands(parser):
        _finish(full, p)
    return parser


def _collect_help(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                _parent_actions.setdefault(f"{prefix}{choice.dest}", []).append(choice)
            for name, sub in action.choices.items():
                _collect_help(sub, f"{prefix}{name} ")


def _leaf(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    prog = getattr(args, "command_name", "ticktide")
    for _, p in iter_commands(parser):
        if p.prog == prog:
            return p
    return parser


def quiet_third_party(level: int) -> None:
    """aiokafka's INFO chatter and its transient coordinator ERRORs only when debugging."""
    if level <= logging.DEBUG:
        return
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_transient_coordinator)


def _transient_coordinator(record: logging.LogRecord) -> bool:
    # a fresh broker answers "coordinator not available" until __consumer_offsets exists; aiokafka retries
    return "CoordinatorNotAvailable" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _leaf(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # a usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    name = getattr(args, "command_name", "ticktide")
    level_name = args.log_level or ("WARNING" if args.command in QUIET_COMMANDS else "INFO")
    level = getattr(logging, level_name, logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    quiet_third_party(level)
    debug = level <= logging.DEBUG
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        line = None if debug else expected_failure(exc)
        if line is None:
            raise
        what, code = line
        print(f"{name}: {what}", file=sys.stderr)
        return code


def expected_failure(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code of a failure the user can fix; None for a real bug."""
    if isinstance(exc, CommandError):
        return str(exc), exc.exit_code
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"{(exc.strerror or str(exc)).lower()}: {exc.filename} (check the path)", 2
    if isinstance(exc, UnicodeDecodeError):
        return f"the input is not UTF-8 text ({exc.reason} at byte {exc.start}) (give a text file)", 2
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"bad TOML: {exc} (fix the file)", 2
    if type(exc).__module__.startswith("aiokafka"):
        return (f"Kafka: {exc or type(exc).__name__} (check the broker and --bus / $TICKTIDE_BUS; "
                "--log-level DEBUG shows the details)"), 1
    return None


if __name__ == "__main__":
    raise SystemExit(main())
