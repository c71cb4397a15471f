"""Command-line plumbing every package's subcommands share: the ``--bus`` option and stop signals."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("ticktide")

DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
# at the bound, a process still running is ended from a thread (the event loop may be stuck)
HARD_EXIT_GRACE_S = 0.0


def add_bus_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bus", default=None,
                        help="kafka://host:port or memory:// (default: $TICKTIDE_BUS or memory://)")


def add_shutdown_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT_S, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, flush and commit for at most this long, then exit 0 "
                             f"whatever the broker does (default {DEFAULT_SHUTDOWN_TIMEOUT_S:.0f}); "
                             "a second signal exits at once")


def broker_unreachable(exc: BaseException) -> bool:
    """True for the error a Kafka client raises when no broker of its bootstrap list answers."""
    return type(exc).__name__ in ("KafkaConnectionError", "NoBrokersAvailable") or isinstance(exc, ConnectionError)


def say_unreachable(command: str, url: str, exc: BaseException) -> int:
    """One error line for a broker that cannot be reached at start; the exit code (2)."""
    print(f"ticktide {command}: cannot reach the broker at {url.split('?')[0]} ({type(exc).__name__}) "
          "(start it, or fix --bus)", file=sys.stderr)
    return 2


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


def _exit_now(why: str, code: int = 0) -> None:
    log.warning("%s", why)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class StopSignals:
    """First SIGTERM/SIGINT: set ``stop`` and arm a watchdog that ends the process
    ``timeout_s`` (+ a short grace) later if the orderly stop is still stuck. Second: exit at once."""

    def __init__(self, stop: asyncio.Event, timeout_s: float | None) -> None:
        self.stop = stop
        self.timeout_s = timeout_s
        self.count = 0
        self.watchdog: threading.Timer | None = None

    def __call__(self, signum: int = signal.SIGTERM) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count > 1:
            _exit_now(f"second {name}: exiting now without flushing or committing")
        self.stop.set()
        if self.timeout_s is not None and self.timeout_s >= 0:
            log.info("%s: stopping within %.0f s", name, self.timeout_s)
            self.watchdog = threading.Timer(self.timeout_s + HARD_EXIT_GRACE_S, _exit_now, args=(
                f"{name} {self.timeout_s + HARD_EXIT_GRACE_S:.0f} s ago and still stopping: exiting now "
                "(what could not be delivered or committed is logged above)",))
            self.watchdog.daemon = True
            self.watchdog.start()


def install_stop_handlers(stop: asyncio.Event, timeout_s: float | None = DEFAULT_SHUTDOWN_TIMEOUT_S) -> StopSignals:
    """SIGTERM/SIGINT set ``stop``: the loop finishes its batch, publishes, commits and exits 0,
    within ``timeout_s`` (None: no bound); a second signal exits at once."""
    handler = StopSignals(stop, timeout_s)
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    except (NotImplementedError, RuntimeError):
        pass
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, handler, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    return handler
