"""History drives the live consumers: Binance klines (paged) -> ``ticktide data publish`` -> bars.v1 on the
real broker -> the features consumer, whose output must equal ``ticktide features --input`` on the same bars.

The klines are real daily closes (tests/data/stock_prices_20.csv) served in Binance's klines format by the
local history server, 2,500 days per symbol so that each symbol takes three 1,000-bar pages.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import msgspec
import pandas as pd
import pytest

from schemas.events import Bar
from streaming.bus.kafka import KafkaBus
from tests.history_server import HistoryServer, klines, stock_closes
from tests.integration.conftest import ROOT, wait_until
from tests.integration.test_features_state import _assert_matches_offline, _enough, _features, _offline_features

pytestmark = pytest.mark.kafka

DAYS = 2500
START = dt.date(2015, 1, 1)
END = START + dt.timedelta(days=DAYS - 1)
PAIRS = {"ETHUSDT": "AAPL", "SOLUSDT": "GE"}  # crypto pairs trade every day: real closes on consecutive days


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ticktide.cli", *args], cwd=ROOT, capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


async def test_binance_history_published_to_bars_drives_the_features_consumer(kafka_url, processes, tmp_path):
    with HistoryServer() as srv:
        for pair, stock in PAIRS.items():
            closes = stock_closes([stock], "2000-01-01", "2017-12-31")[stock].dropna().iloc[:DAYS]
            closes.index = pd.date_range(START, periods=DAYS, freq="D")
            srv.serve_klines(pair, klines(closes))
        env = {**srv.env(), "ALPHAVANTAGE_API_KEY": ""}
        common = ["--symbols", ",".join(PAIRS), "--start", START.isoformat(), "--end", END.isoformat(),
                  "--cache-dir", str(tmp_path / "cache")]
        bus = KafkaBus(kafka_url)
        await bus.ensure_topics(["bars.v1", "ticks.v1", "features.v1", "dlq.v1"])
        features = processes.start("consume", "features", "--bus", kafka_url, name="features")
        pub = _cli("data", "publish", *common, "--bus", kafka_url, env=env)
        assert pub.returncode == 0, pub.stderr.decode()[-3000:]
        assert srv.requests["binance"] == 6  # three pages per symbol
        # the same bars offline: from the cache (no request), as the features CLI's bars CSV
        fetched = _cli("data", "fetch", *common, "--out", str(tmp_path / "long.csv"), env=env)
        assert fetched.returncode == 0, fetched.stderr.decode()[-3000:]
        assert srv.requests["binance"] == 6
    long = pd.read_csv(tmp_path / "long.csv")
    assert set(long["source"]) == {"binance"} and len(long) == 2 * DAYS
    ts = (pd.to_datetime(long["date"], utc=True) + pd.Timedelta(hours=21)).dt.as_unit("ns").astype("int64")
    bars_csv = tmp_path / "bars.csv"
    long.assign(ts=ts)[["ts", "symbol", "open", "high", "low", "close", "volume"]].to_csv(bars_csv, index=False)
    expected = _offline_features(bars_csv)
    assert len(expected) == 2 * DAYS

    published = [msgspec.json.decode(r.value, type=Bar)
                 for r in sorted(await bus.read_all("bars.v1", 30), key=lambda r: (r.partition, r.offset))]
    assert len(published) == 2 * DAYS
    first_close_ns = int(dt.datetime(2015, 1, 1, 21, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert min(b.ts_event for b in published) == first_close_ns  # a daily bar closes at 21:00 UTC, in ns
    for pair in PAIRS:
        mine = [b for b in published if b.symbol == pair]
        assert [b.ts_event for b in mine] == sorted(ts[long["symbol"] == pair])  # in date order, none lost
        assert {b.source for b in mine} == {"binance"} and {b.interval for b in mine} == {"1d"}

    await wait_until(lambda: _enough(bus, len(expected)), 180, what="features for every bar")
    assert processes.stop(features) == 0, processes.log(features)[-3000:]
    _assert_matches_offline(await _features(bus), expected)
    await bus.close()
