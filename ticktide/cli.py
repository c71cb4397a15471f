"""The ``ticktide`` command line.

Each area registers its own subcommands: a module in ``COMMAND_MODULES``
exposes ``register(subparsers)`` which adds parsers whose ``func(args)``
returns an exit code. Keeping registration beside the code keeps this file
small and lets each package own its CLI.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

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
QUIET_COMMANDS = {"demo", "subscribe", "normalize", "features", "signals", "risk", "workflow", "topics", "optimize",
                  "data"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticktide",
        description="Event-driven streaming for quantitative trading.",
    )
    parser.add_argument("--log-level", default=None,
                        help="logging level (default INFO for services, WARNING for interactive tools)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or ("WARNING" if args.command in QUIET_COMMANDS else "INFO")
    logging.basicConfig(
        level=getattr(logging, str(level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
