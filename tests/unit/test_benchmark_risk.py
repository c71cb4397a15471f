"""Benchmark-aware risk: empyrical parity, the beta-scaled crash, the historical window, CLI and consumer."""

from __future__ import annotations

import json
from pathlib import Path

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

from consumers.risk import metrics as m
from consumers.risk.commands import read_prices
from consumers.risk.config import RiskConfig
from consumers.risk.processor import RiskProcessor
from consumers.risk.stress import StressConfig, historical_worst_window, market_crash
from schemas.events import Bar, Fill, RiskUpdate, TargetPortfolio
from streaming.processor import Envelope

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
DAY = 86_400 * 10**9
T0 = 1_700_000_000 // 86_400 * DAY


@pytest.fixture(scope="module")
def rets() -> pd.DataFrame:
    px = read_prices(str(DATA)).loc["2015-01-01":"2017-12-31"]
    return px[["AAPL", "JPM", "XOM", "PFE", "BAC", "GE", "WMT"]].pct_change().iloc[1:]


@pytest.mark.parametrize("asset,bench", [("AAPL", "GE"), ("JPM", "BAC"), ("XOM", "WMT"), ("PFE", "GE")])
def test_benchmark_metrics_match_empyrical(rets, asset, bench):
    r, b = rets[asset].to_numpy(), rets[bench].to_numpy()
    rf = 0.02 / 252
    got = m.risk_metrics(r, risk_free=0.02, benchmark=b)
    for key, ref in (("beta", ep.beta(r, b)), ("alpha", ep.alpha(r, b, risk_free=rf)),
                     ("tracking_error", float(np.std(r - b, ddof=1) * np.sqrt(252))),
                     ("information_ratio", ep.excess_sharpe(r, b) * np.sqrt(252)),
                     ("annual_return", ep.annual_return(r)), ("calmar", ep.calmar_ratio(r)),
                     ("sharpe", ep.sharpe_ratio(r, risk_free=rf)), ("sortino", ep.sortino_ratio(r, required_return=rf))):
        assert got[key] == pytest.approx(ref, rel=1e-9, abs=1e-12), key


def test_market_crash_is_shock_times_beta_to_the_benchmark(rets):
    hist = {s: rets[s].to_numpy() for s in rets.columns}
    beta_jpm = rets["JPM"].cov(rets["BAC"]) / rets["BAC"].var()
    beta_aapl = rets["AAPL"].cov(rets["BAC"]) / rets["BAC"].var()
    alone = market_crash({"JPM": 1.0}, hist, benchmark=("BAC", hist["BAC"]))
    assert alone.portfolio_loss == pytest.approx(-0.30 * beta_jpm, rel=1e-12)
    assert "BAC falls -30%" in alone.method and "beta" in alone.method
    mixed = market_crash({"JPM": 0.6, "AAPL": 0.4}, hist, benchmark=("BAC", hist["BAC"]))
    assert mixed.portfolio_loss == pytest.approx(-0.30 * (0.6 * beta_jpm + 0.4 * beta_aapl), rel=1e-12)
    # an equal-weight book no longer shows exactly the shock
    assert market_crash({"JPM": 0.5, "AAPL": 0.5}, hist, benchmark=("BAC", hist["BAC"])).portfolio_loss != -0.30
    uniform = market_crash({"JPM": 0.6, "AAPL": 0.4}, hist)
    assert uniform.portfolio_loss == pytest.approx(-0.30) and "no benchmark" in uniform.method


@pytest.mark.parametrize("with_benchmark", [True, False])
def test_historical_window_equals_pandas(rets, with_benchmark):
    w = {"AAPL": 0.5, "XOM": 0.3, "PFE": 0.2}
    hist = {s: rets[s].to_numpy() for s in rets.columns}
    bench = ("GE", hist["GE"]) if with_benchmark else None
    got = historical_worst_window(w, hist, StressConfig(historical_days=21), bench)
    source = rets["GE"] if with_benchmark else rets[list(w)] @ pd.Series(w)
    window = (1 + source).rolling(21).apply(np.prod, raw=True) - 1
    end = int(np.nanargmin(window.to_numpy()))
    moves = (1 + rets[list(w)].iloc[end - 20:end + 1]).prod() - 1
    assert got.portfolio_loss == pytest.approx(float(moves @ pd.Series(w)), rel=1e-12)
    assert f"({window.iloc[end]:.2%}" in got.method and "21-day window of" in got.method
    assert got.worst_position == (moves * pd.Series(w)).idxmin()


def test_risk_cli_with_a_benchmark(tmp_path, capsys):
    from ticktide.cli import main

    w = tmp_path / "w.json"
    w.write_text(json.dumps({"JPM": 1.0}))
    assert main(["risk", "--prices", str(DATA), "--weights", str(w), "--benchmark", "BAC"]) == 0
    out = json.loads(capsys.readouterr().out)
    px = read_prices(str(DATA))[["JPM", "BAC"]].dropna().pct_change().iloc[1:].iloc[-252:]
    assert out["benchmark"] == "BAC" and out["beta"] == pytest.approx(ep.beta(px["JPM"], px["BAC"]), rel=1e-9)
    crash = next(s for s in out["stress"] if s["scenario"] == "market_crash")
    assert crash["portfolio_loss"] == pytest.approx(-0.3 * out["beta"], rel=1e-9)
    assert all(s["method"] for s in out["stress"])
    assert main(["risk", "--prices", str(DATA), "--weights", str(w), "--benchmark", "SPY"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticktide risk: benchmark SPY is not a column") and err.count("\n") == 1


def test_the_live_consumer_reads_the_benchmark_from_bars(rets):
    cfg = RiskConfig.from_mapping({"initial_cash": 100_000.0, "lookback": 100, "benchmark": "BAC",
                                   "publish_interval_s": 86400, "inputs": ["fills.v1", "bars.v1", "targets.v1"]})
    proc = RiskProcessor(cfg, clock=lambda: 1)
    px = read_prices(str(DATA))[["JPM", "BAC"]].dropna().iloc[-101:]

    def bar(sym, price, ts):
        return Envelope("bars.v1", 0, 0, None, Bar(symbol=sym, ts_event=ts, open=price, high=price, low=price,
                                                   close=price, volume=0.0, interval="1d", source="t"))
    j0 = float(px["JPM"].iloc[0])
    proc.process([Envelope("fills.v1", 0, 0, None, Fill(fill_id="f1", order_id="o1", portfolio_id="p", symbol="JPM",
                                                        side="buy", quantity=1000, price=j0, fee=0.0, ts_event=T0,
                                                        ts_proc=0))])
    for d, (_, (j, b)) in enumerate(px.iterrows()):
        proc.process([bar("JPM", float(j), T0 + d * DAY + 5), bar("BAC", float(b), T0 + d * DAY + 6)])
    u = proc.update_for(proc.book("p"), T0 + 100 * DAY + 6)
    equity = 100_000 - 1000 * j0 + 1000 * px["JPM"].to_numpy()
    r, b = equity[1:] / equity[:-1] - 1, px["BAC"].pct_change().iloc[1:].to_numpy()
    assert u.benchmark == "BAC" and u.beta == pytest.approx(m.beta(r, b), rel=1e-9)
    assert u.tracking_error == pytest.approx(m.tracking_error(r, b), rel=1e-9)
    tgt = TargetPortfolio(portfolio_id="p", rebalance_id="r", ts_event=T0 + 101 * DAY, ts_proc=0, weights={"JPM": 1.0})
    [upd] = [o.event for o in proc.process([Envelope("targets.v1", 0, 0, None, tgt)]).outputs
             if isinstance(o.event, RiskUpdate)]
    crash = upd.stress[0]
    assert crash.scenario == "market_crash" and "BAC falls" in crash.method
    beta_jpm = m.beta(px["JPM"].pct_change().iloc[1:].to_numpy(), b)
    assert crash.portfolio_loss == pytest.approx(-0.3 * beta_jpm, rel=1e-9)
