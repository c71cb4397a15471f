"""Command-line plumbing every package's subcommands share: the ``--bus`` option and stop signals."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


def add_bus_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bus", default=None,
                        help="kafka://host:port or memory:// (default: $TICKTIDE_BUS or memory://)")


def _dump_tasks() -> None:
    """SIGUSR1: print every asyncio task's stack to stderr (where is a process waiting?)."""
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}", file=sys.stderr)
        coro = task.get_coro()
        while coro is not None:  # follow the await chain down to where it waits
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}", file=sys.stderr)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    sys.stderr.flush()


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: the loop finishes its batch, publishes, commits and exits 0."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    except (NotImplementedError, RuntimeError):
        pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
