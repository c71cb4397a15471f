"""The README's first command (`make demo` = `ticktide demo`) as a user runs it: a
separate process on the embedded bus that prints signals and exits 0 on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_prints_signals_and_exits_cleanly():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TICKTIDE_BUS", None)  # the embedded default
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", "demo", "--duration", "8", "--seed", "7"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = re.search(r"(\d+) ticks normalized, (\d+) signals", out.stderr)
    assert summary, out.stderr[-3000:]
    ticks, signals = map(int, summary.groups())
    assert ticks > 100 and signals > 0
    lines = out.stdout.splitlines()
    assert len(lines) == signals  # one line per signal, nothing else on stdout
    pattern = re.compile(r"^\d\d:\d\d:\d\d (BTCUSDT|ETHUSDT|SOLUSDT)\s+\w+\s+(review|consider_trade|buy|sell)\s+"
                         r"(low|medium|high)\s+strength=\s*[\d.]+\s+\S")
    assert all(pattern.match(line) for line in lines), lines[:5]
    # alive: a status line every 5 s, and signals keep coming after the first burst (short demo cooldowns)
    status = [line for line in out.stderr.splitlines() if "ticks/s" in line]
    assert status and re.search(r"\d+ features/s, \d+ signals so far \| BTCUSDT [\d,.]+", status[0]), out.stderr
    assert len({line[:8] for line in lines}) >= 2, lines
