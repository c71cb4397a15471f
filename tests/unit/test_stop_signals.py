"""A stop always stops: SIGTERM ends a process within --shutdown-timeout even when the broker never
answers, with exit code 0; a second signal exits at once. And a broker that cannot be reached at
start is one error line, not a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dead_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ticktide.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_consumer_that_cannot_reach_its_broker_says_so_in_one_line():
    port = _dead_port()
    proc = _start("consume", "features", "--bus", f"kafka://127.0.0.1:{port}")
    out, err = proc.communicate(timeout=120)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert proc.returncode == 1, err.decode()  # exit 1: the broker, not the command line (issue 15)
    assert "Traceback" not in err.decode()
    assert lines[-1].startswith(f"ticktide consume: cannot reach Kafka: 127.0.0.1:{port}"), lines


def _black_hole() -> socket.socket:
    """A listening socket nobody reads: connections open, requests are never answered (a hung broker)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def test_sigterm_ends_the_process_within_the_bound_while_the_broker_hangs():
    hole = _black_hole()
    try:
        proc = _start("subscribe", "ticks.v1", "--bus", f"kafka://127.0.0.1:{hole.getsockname()[1]}",
                      "--shutdown-timeout", "2")
        time.sleep(3)  # stuck connecting to a broker that never answers
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        took = time.monotonic() - t0
        assert took < 2 + 3, took  # the bound, the watchdog's grace, process exit
        assert "Traceback" not in proc.stderr.read().decode()
    finally:
        hole.close()


def test_a_second_signal_exits_at_once():
    hole = _black_hole()
    try:
        # (a start-up stops at the first signal; an exactly-once consumer starts its bus inside the
        # runner, where the first signal only begins a bounded stop that the hung broker holds up)
        proc = _start("consume", "features", "--exactly-once", "--bus", f"kafka://127.0.0.1:{hole.getsockname()[1]}",
                      "--shutdown-timeout", "30")
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 2
        assert "second SIGINT: exiting now" in proc.stderr.read().decode()
    finally:
        hole.close()
