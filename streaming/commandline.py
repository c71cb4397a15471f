"""Command-line plumbing every package's subcommands share.

- :class:`CommandError`: an expected failure the user can fix; ``ticktide.cli``
  prints it as one line ``ticktide <command>: <what> (<how to fix>)``.
- :class:`CommandParser`: argparse whose usage errors are that one line too.
- The bus rule (:func:`add_bus_option`, :func:`cli_bus_url`,
  :func:`ensure_reachable`): ``--bus``, else ``$TICKTIDE_BUS``, else the
  command's default (Kafka for commands that talk to other processes).
- Shared option spellings (:func:`add_input_option`, :func:`add_config_option`,
  :func:`add_symbols_option`, :func:`add_venue_option`) so every command names
  them alike, and stop signals.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from typing import Sequence
from urllib.parse import urlsplit

from streaming.errors import CommandError  # noqa: F401 - re-exported for the commands

KAFKA_DEFAULT = "kafka://localhost:9092"
EMBEDDED_DEFAULT = "memory://"
BUS_SCHEMES = ("kafka://", "memory://")
REACH_TIMEOUT_S = 8.0

log = logging.getLogger("ticktide")

DEFAULT_SHUTDOWN_TIMEOUT_S = 10.0
# at the bound, a process still running is ended from a thread (the event loop may be stuck)
HARD_EXIT_GRACE_S = 0.0


class CommandParser(argparse.ArgumentParser):
    """Usage errors as one line naming the command, not the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default after its help (unless the help names it); descriptions wrapped, indented
    lines (examples) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line if line.startswith(" ") or not line else
                         super(HelpFormatter, self)._fill_text(line, width, indent) for line in text.splitlines())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or isinstance(action, argparse._HelpAction)
                or any(action.default is x for x in (None, False, argparse.SUPPRESS))):
            return text
        return f"{text} (default: %(default)s)"


# -- shared options: one name, one spelling, one help text -----------------------
def add_bus_option(parser: argparse.ArgumentParser, default: str = KAFKA_DEFAULT) -> None:
    where = ("the embedded bus, private to this process" if default.startswith("memory://")
             else "a Kafka broker other processes can reach")
    parser.add_argument("--bus", default=None, metavar="URL",
                        help=f"kafka://host:port[,host:port] or memory:// (default: $TICKTIDE_BUS, else {default}: "
                             f"{where})")
    parser.set_defaults(bus_default=default)


def add_input_option(parser: argparse.ArgumentParser, what: str, *old: str, required: bool = True) -> None:
    """The input file: ``--input FILE`` everywhere (older spellings kept as aliases)."""
    parser.add_argument("--input", *old, dest="input", required=required, metavar="FILE", type=input_file,
                        help=what)


def add_config_option(parser: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    parser.add_argument("--config", default=None, required=required, metavar="FILE", type=input_file,
                        help=f"{what} (default: built-in settings)" if not required else what)


def add_symbols_option(parser: argparse.ArgumentParser, default: str | None = None, required: bool = False,
                       *old: str) -> None:
    parser.add_argument("--symbols", *old, dest="symbols", default=default, required=required, metavar="SYMS",
                        action=_SymbolsAction,
                        help="comma-separated symbols, e.g. BTCUSDT,ETHUSDT (may be repeated)")


def add_venue_option(parser: argparse.ArgumentParser, venues: Sequence[str], required: bool = True,
                     flag: str = "--venue", default: str | None = None) -> None:
    parser.add_argument(flag, required=required, default=default, choices=list(venues), metavar="VENUE",
                        help=f"venue adapter: {', '.join(venues)}")


class _SymbolsAction(argparse.Action):
    """``--symbols A,B`` and ``--symbols A --symbols B`` both give ``"A,B"``."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        first = current is None or current == self.default
        setattr(namespace, self.dest, values if first else f"{current},{values}")


def split_symbols(text: str | None, upper: bool = False) -> list[str]:
    out = [s.strip() for s in (text or "").split(",") if s.strip()]
    return [s.upper() for s in out] if upper else out


def input_file(path: str) -> str:
    """argparse type: a readable file (``-`` = stdin)."""
    if path == "-":
        return path
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path} is a directory, not a file")
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {path}")
    return path


# -- the bus rule ------------------------------------------------------------------
def cli_bus_url(args: argparse.Namespace, command: str | None = None) -> str:
    """``--bus``, else ``$TICKTIDE_BUS``, else the command's default; warns when an inter-process
    command is put on the embedded bus, where nothing outside this process can see it."""
    default = getattr(args, "bus_default", KAFKA_DEFAULT)
    given = getattr(args, "bus", None)
    url = (given or os.environ.get("TICKTIDE_BUS") or default).strip()
    source = "--bus" if given else "$TICKTIDE_BUS" if os.environ.get("TICKTIDE_BUS") else "default"
    if not url.startswith(BUS_SCHEMES):
        raise CommandError(f"bad bus URL {url!r} from {source}", "use kafka://host:port or memory://")
    if url.startswith("kafka://") and not urlsplit(url).netloc:
        raise CommandError(f"bad bus URL {url!r} from {source}: no broker address", "use kafka://host:port")
    if url.startswith("memory://") and not default.startswith("memory://"):
        name = command or getattr(args, "command_name", "ticktide")
        print(f"{name}: warning: {url} is private to this process; nothing outside it can see this command's "
              f"messages (use --bus kafka://host:port)", file=sys.stderr, flush=True)
    return url


def kafka_hosts(url: str) -> list[tuple[str, int]]:
    hosts = []
    for part in urlsplit(url).netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            host, port = port, "9092"
        try:
            hosts.append((host.strip("[]"), int(port)))
        except ValueError:
            raise CommandError(f"bad broker address {part!r} in {url}", "use kafka://host:port") from None
    return hosts


async def ensure_reachable(url: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Fail fast when no Kafka bootstrap broker accepts a connection (``memory://`` always passes)."""
    if not url.startswith("kafka://"):
        return
    hosts = kafka_hosts(url)
    reasons = []
    per_host = max(1.0, timeout_s / len(hosts))
    for host, port in hosts:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), per_host)
        except asyncio.TimeoutError:
            reasons.append(f"{host}:{port} timed out")
            continue
        except ConnectionRefusedError:
            reasons.append(f"{host}:{port} refused the connection")
            continue
        except socket.gaierror:
            reasons.append(f"unknown host {host}")
            continue
        except OSError as exc:
            reasons.append(f"{host}:{port} {exc.strerror or exc}")
            continue
        writer.close()
        return
    raise CommandError(f"cannot reach Kafka: {'; '.join(reasons)}",
                       "start a broker, or point --bus / $TICKTIDE_BUS at one", exit_code=1)


async def start_cli_bus(args: argparse.Namespace, command: str | None = None, configure=None):
    """The bus of a command, reachable and started; errors are :class:`CommandError`.
    ``configure(bus)`` runs before the start (settings the producer is created with)."""
    from streaming.bus import open_bus

    url = cli_bus_url(args, command)
    await ensure_reachable(url)
    bus = open_bus(url)
    if configure is not None:
        configure(bus)
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    if not kafka_log.isEnabledFor(logging.DEBUG):
        kafka_log.setLevel(logging.CRITICAL)  # a failed start is reported below, in one line
    try:
        await asyncio.wait_for(bus.start(), REACH_TIMEOUT_S + 2)
    except Exception as exc:  # aiokafka raises many kinds here; any of them means "cannot use this broker"
        try:
            await bus.close()
        except Exception:
            pass
        raise CommandError(f"cannot start the bus {url.split('?')[0]}: {exc or type(exc).__name__}",
                           "check the broker and --bus / $TICKTIDE_BUS", exit_code=1) from exc
    finally:
        kafka_log.setLevel(level)
    return bus


async def unless_stopped(work, stop: asyncio.Event):
    """``await work``, unless a stop signal comes first (a broker that never answers must not
    hold a start-up hostage): then None, the work cancelled."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    return None


def check_topic(name: str) -> str:
    from schemas.topics import CATALOGUE

    if name not in CATALOGUE:
        raise CommandError(f"unknown topic {name!r}", f"choose one of: {', '.join(CATALOGUE)}")
    return name


# -- signals ---------------------------------------------------------------------
def add_shutdown_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT_S, metavar="SECONDS",
                        help="on SIGTERM/SIGINT, flush and commit for at most this long, then exit 0 "
                             f"whatever the broker does (default {DEFAULT_SHUTDOWN_TIMEOUT_S:.0f}); "
                             "a second signal exits at once")


def broker_unreachable(exc: BaseException) -> bool:
    """True for the error a Kafka client raises when no broker of its bootstrap list answers."""
    return type(exc).__name__ in ("KafkaConnectionError", "NoBrokersAvailable") or isinstance(exc, ConnectionError)


def unreachable(url: str, exc: BaseException) -> CommandError:
    """The one-line error for a broker that answered the TCP check but not the client (exit 1), the same
    words as :func:`ensure_reachable`'s."""
    return CommandError(f"cannot reach Kafka at {url.split('?')[0]} ({type(exc).__name__})",
                        "start a broker, or point --bus / $TICKTIDE_BUS at one", exit_code=1)


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
