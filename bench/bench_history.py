"""History fetch: cold (local server replaying Yahoo chart answers) vs cache hit vs today's prices file.

Input: the 20 real daily close series of tests/data/stock_prices_20.csv (1990-2018, up to 7,126 rows each)
served by tests/history_server.py in Yahoo's chart v8 format on 127.0.0.1. Measured in one run:

- baseline: ``ticktide.workflow.data.load_prices`` on the wide CSV (what ``workflow run --prices`` does);
- cold: ``load_history`` with an empty cache (HTTP + JSON parse + Parquet write + rules + quality);
- warm: the same call again (Parquet reads only, no request) -- the ratio to the baseline is the point;
- rules: ``BarRules.apply`` alone over all rows (rows per second).

Usage: PYTHONPATH=. .venv/bin/python bench/bench_history.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from producers.history import HistoryConfig, load_history
from producers.history.preprocess import BarRules
from tests.history_server import DATA, HistoryServer
from ticktide.workflow.data import load_prices

START, END = dt.date(1990, 1, 1), dt.date(2018, 12, 31)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    closes = pd.read_csv(DATA / "stock_prices_20.csv", index_col=0, parse_dates=True)
    symbols = list(closes.columns)
    rows = int(closes.notna().sum().sum())
    res = {"baseline": [], "cold": [], "warm": [], "rules": []}
    with HistoryServer() as srv:
        for s in symbols:
            srv.serve("yahoo", s, closes[s])
        for _ in range(args.repeat):
            t = time.perf_counter()
            load_prices(str(DATA / "stock_prices_20.csv"))
            res["baseline"].append(time.perf_counter() - t)
            with tempfile.TemporaryDirectory() as cache:
                # min_coverage 0: listings start late in this file; completeness is reported, not enforced
                cfg = HistoryConfig(yahoo_url=srv.url, sources=["yahoo"], cache_dir=cache, min_coverage=0.0)
                before = srv.requests["yahoo"]
                t = time.perf_counter()
                h = load_history(symbols, START, END, config=cfg)
                res["cold"].append(time.perf_counter() - t)
                assert srv.requests["yahoo"] - before == len(symbols)
                t = time.perf_counter()
                load_history(symbols, START, END, config=cfg)
                res["warm"].append(time.perf_counter() - t)
                assert srv.requests["yahoo"] - before == len(symbols), "the warm run made requests"
                size = sum(p.stat().st_size for p in Path(cache).rglob("*.parquet"))
            raw = {s: r.bars for s, r in h.fetched.items()}
            rules = BarRules()
            t = time.perf_counter()
            for s, b in raw.items():
                rules.apply(s, b)
            res["rules"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(f"{len(symbols)} symbols, {rows:,} bars, cache {size / 1e6:.1f} MB; median of {args.repeat}")
    print(f"baseline load_prices (wide CSV): {med['baseline'] * 1e3:8.1f} ms")
    print(f"cold fetch (local server):       {med['cold'] * 1e3:8.1f} ms  ({med['cold'] / med['baseline']:.1f}x baseline)")
    print(f"warm fetch (cache hit):          {med['warm'] * 1e3:8.1f} ms  ({med['warm'] / med['baseline']:.1f}x baseline, "
          f"{med['cold'] / med['warm']:.1f}x faster than cold)")
    print(f"rules alone:                     {med['rules'] * 1e3:8.1f} ms  ({rows / med['rules'] / 1e6:.2f} M bars/s)")
    print("runs:", {k: [round(x * 1e3, 1) for x in v] for k, v in res.items()})


if __name__ == "__main__":
    main()
