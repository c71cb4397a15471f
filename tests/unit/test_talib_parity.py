"""EMA warm-up the TA-Lib way: null until the span is seen, equal to TA-Lib from the first value.

TA-Lib (the C library, through its PyPI wrapper) is the independent reference:
``EMA`` seeds with the simple mean of the first n prices; ``MACD`` seeds its
fast EMA on the 12 prices ending where the slow EMA starts and its signal on
the first 9 MACD values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import talib  # a dev dependency

from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import compute
from streaming.kernels.reference import reference_features
from ticktide.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
NAMES = FeatureConfig().feature_names()
COL = {n: i for i, n in enumerate(NAMES)}


def _series():
    df = pd.read_csv(DATA / "stock_prices_20.csv", index_col="date")
    return {s: df[s].dropna().to_numpy(dtype=np.float64) for s in df.columns}


def _first_valid(x: np.ndarray) -> int:
    return int(np.argmax(~np.isnan(x)))


def _same(ours: np.ndarray, ref: np.ndarray, scale: np.ndarray, label: str) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), f"{label}: null rows differ"
    ok = ~np.isnan(ref)
    err = np.abs(ours[ok] - ref[ok]) / scale[ok]
    assert err.max() <= 1e-12, f"{label}: max error {err.max():.3g} of the price"


def test_ema_macd_signal_equal_talib_from_the_first_valid_row_on_20_daily_series():
    series = _series()
    assert len(series) == 20
    for sym, p in series.items():
        out = compute(p)
        macd, signal, _ = talib.MACD(p, 12, 26, 9)
        macd_early, _, _ = talib.MACD(p, 12, 26, 1)  # same MACD line, valid from the slow EMA's start
        _same(out[:, COL["ema_12"]], talib.EMA(p, 12), p, f"{sym} ema_12")
        _same(out[:, COL["ema_26"]], talib.EMA(p, 26), p, f"{sym} ema_26")
        _same(out[:, COL["macd"]], macd_early, p, f"{sym} macd")
        _same(out[33:, COL["macd"]], macd[33:], p[33:], f"{sym} macd (signal 9)")
        _same(out[:, COL["macd_signal"]], signal, p, f"{sym} macd_signal")
        first = {n: _first_valid(out[:, COL[n]]) for n in ("ema_12", "ema_26", "macd", "macd_signal")}
        assert first == {"ema_12": 11, "ema_26": 25, "macd": 25, "macd_signal": 33}, sym


def test_reference_twin_follows_the_same_seeds():
    p = _series()["AMD"][:400]
    ours = compute(p)
    ref = reference_features(p)
    for name in ("ema_12", "ema_26", "macd", "macd_signal"):
        _same(ours[:, COL[name]], ref[name].to_numpy(), p, name)


def test_short_series_are_null_not_zero():
    out = compute(np.array([100.0, 101.0, 99.0]))
    for name in ("ema_12", "ema_26", "macd", "macd_signal"):
        assert np.isnan(out[:, COL[name]]).all(), name


def test_two_rows_give_no_macd_signal(tmp_path, capsys):
    """The issue's example: ``ticktide features`` then ``ticktide signals`` on two prices."""
    src = tmp_path / "f.csv"
    src.write_text("date,X\n2020-01-01,100\n2020-01-02,101\n")
    feats = tmp_path / "f.jsonl"
    assert main(["features", "--input", str(src), "--output", str(feats)]) == 0
    rows = [json.loads(x) for x in feats.read_text().splitlines()]
    assert [r["macd"] for r in rows] == [None, None] and [r["macd_signal"] for r in rows] == [None, None]
    capsys.readouterr()
    assert main(["signals", "--input", str(feats)]) == 0
    assert capsys.readouterr().out.strip() == ""


def test_no_signal_on_a_feature_s_first_valid_value(tmp_path, capsys):
    """Every rule over 40 rows of 5 real series: nothing fires before MACD's signal has two values."""
    df = pd.read_csv(DATA / "stock_prices_20.csv").dropna(subset=["AAPL", "GE", "AMD", "WMT", "BAC"])
    df = df[["date", "AAPL", "GE", "AMD", "WMT", "BAC"]].head(40)
    src = tmp_path / "p.csv"
    df.to_csv(src, index=False)
    feats = tmp_path / "p.jsonl"
    assert main(["features", "--input", str(src), "--output", str(feats)]) == 0
    capsys.readouterr()
    assert main(["signals", "--input", str(feats)]) == 0
    signals = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    macd = [s for s in signals if s["type"] == "macd"]
    assert all(s["seq"] >= 35 for s in macd), macd  # macd_signal is valid from seq 34
