"""``ticktide features`` in-process on the daily CSV, a bars CSV and a small tick file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from schemas.events import Tick
from ticktide.cli import main
from streaming.kernels.config import FeatureConfig
from streaming.kernels.reference import reference_features

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = FeatureConfig().feature_names()


def _close(a, b):
    if b is None or (isinstance(b, float) and np.isnan(b)):
        return a is None
    return a is not None and abs(a - b) <= max(1e-9 * abs(b), 1e-12)


def test_wide_daily_csv_to_csv(tmp_path):
    out = tmp_path / "f.csv"
    assert main(["features", "--input", str(DATA / "stock_prices_20.csv"), "--format", "csv",
                 "--output", str(out)]) == 0
    df = pd.read_csv(DATA / "stock_prices_20.csv")
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["symbol", "ts", "kind", "seq", "price", *NAMES]
    assert len(rows) - 1 == int(df.drop(columns="date").notna().to_numpy().sum())
    assert rows[1][:2] == ["AAPL", "1989-12-29"]  # row order, symbols in column order, empty cells skipped
    amd = [r for r in rows[1:] if r[0] == "AMD"]
    ref = reference_features(df["AMD"].dropna().to_numpy())
    assert len(amd) == len(ref)
    assert [r[1] for r in amd] == df.loc[df["AMD"].notna(), "date"].tolist()
    for i in (0, 13, 62, 63, 500, len(ref) - 1):
        for j, name in enumerate(NAMES):
            cell = amd[i][5 + j]
            assert _close(None if cell == "" else float(cell), ref[name].iloc[i]), (i, name)
        assert float(amd[i][4]) == df["AMD"].dropna().iloc[i]
        assert amd[i][2:4] == ["bar", str(i + 1)]


def test_wide_csv_jsonl_and_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("return_periods = [2]\nvolatility_windows = [3]\nmomentum_periods = [2]\n"
                   "volume_periods = [2]\nprice_levels = [2]\n")
    src = tmp_path / "w.csv"
    src.write_text("date,A,B\n2024-01-01,10,\n2024-01-02,11,5\n2024-01-03,12,6\n2024-01-04,,7\n")
    out = tmp_path / "o.jsonl"
    assert main(["features", "--input", str(src), "--config", str(cfg), "--output", str(out)]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["symbol"], r["ts"]) for r in recs] == [
        ("A", "2024-01-01"), ("A", "2024-01-02"), ("B", "2024-01-02"), ("A", "2024-01-03"),
        ("B", "2024-01-03"), ("B", "2024-01-04")]
    names = FeatureConfig.load(cfg).feature_names()
    assert list(recs[0]) == ["symbol", "ts", "kind", "seq", "price", *names]
    assert [(r["kind"], r["seq"]) for r in recs if r["symbol"] == "B"] == [("bar", 1), ("bar", 2), ("bar", 3)]
    assert recs[3]["return_2"] == 12 / 10 - 1 and recs[1]["return_2"] is None
    assert recs[3]["support_2"] == 11 and recs[3]["resistance_2"] == 12
    assert recs[3]["volume_ma_2"] == 0.0 and recs[3]["vwap_2"] is None  # no volume in a close CSV


def test_ticks_jsonl(tmp_path, capsys):
    enc = msgspec.json.Encoder()
    lines = []
    for i in range(30):
        lines.append(enc.encode(Tick(symbol="BTCUSDT", venue="binance", kind="trade", ts_event=1000 + i,
                                     ts_recv=2000 + i, price=60000.0 + (i % 5) * 0.01, size=0.1 + i)))
        if i == 10:
            lines.append(enc.encode(Tick(symbol="BTCUSDT", venue="binance", kind="quote", ts_event=1010,
                                         ts_recv=2010, bid=60000.0, ask=60000.5)))
    lines.insert(3, b"{not json")
    src = tmp_path / "t.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    assert main(["features", "--input", str(src)]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(recs) == 31  # one per usable input row (the bad line is skipped)
    assert recs[0]["symbol"] == "BTCUSDT" and recs[0]["ts"] == 1000
    assert recs[0]["mid"] is None and recs[11]["mid"] == 60000.25 and recs[11]["spread"] == 0.5
    assert recs[-1]["mid"] == 60000.25  # carried by later trades
    assert recs[11]["price"] == 60000.25 and recs[0]["price"] == 60000.0
    trades = [r for i, r in enumerate(recs) if i != 11]
    ref = reference_features([60000.0 + (i % 5) * 0.01 for i in range(30)], [0.1 + i for i in range(30)])
    for i, r in enumerate(trades):
        for name in NAMES[:-2]:
            assert _close(r[name], ref[name].iloc[i]), (i, name)


def test_long_bars_csv_and_errors(tmp_path, capsys):
    src = tmp_path / "bars.csv"
    src.write_text("ts,symbol,open,high,low,close,volume\n"
                   + "".join(f"2024-01-{d:02d},{s},1,1,1,{10 + d + k},{100 * d}\n"
                             for d in range(1, 11) for k, s in enumerate(("X", "Y"))))
    assert main(["features", "--input", str(src), "--format", "csv"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert len(rows) == 21 and rows[1][:2] == ["X", "2024-01-01"]
    last_x = dict(zip(rows[0], rows[-2]))
    assert float(last_x["volume_ma_5"]) == sum(100 * d for d in range(6, 11)) / 5
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    assert main(["features", "--input", str(bad)]) == 2
    assert main(["features", "--input", str(tmp_path / "missing.csv")]) == 2
