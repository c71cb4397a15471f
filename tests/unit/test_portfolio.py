"""Portfolio consumer: schedules, triggers, rebalances, infeasibility, state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.processor import PortfolioProcessor
from consumers.portfolio.rebalance import (Schedule, Triggers, deviation, drifted_weights, performance_since,
                                           trigger_for)
from schemas.events import Alert, Bar, FeatureVector, RebalanceReport, TargetPortfolio
from streaming.processor import Envelope


def ns(s: str) -> int:
    return int(pd.Timestamp(s, tz="UTC").value)


@pytest.mark.parametrize("freq,ts,expected", [
    ("daily", "2024-03-13 21:00", "2024-03-13 16:00"),
    ("daily", "2024-03-13 10:00", "2024-03-12 16:00"),
    ("weekly", "2024-03-13 21:00", "2024-03-11 16:00"),  # Monday
    ("monthly", "2024-03-13 21:00", "2024-03-01 16:00"),
    ("monthly", "2024-03-01 10:00", "2024-02-01 16:00"),
    ("quarterly", "2024-03-13 21:00", "2024-01-01 16:00"),
    ("quarterly", "2024-01-01 10:00", "2023-10-01 16:00"),
])
def test_schedule_last_instant(freq, ts, expected):
    assert Schedule(freq, "16:00").last_instant(ns(ts)) == ns(expected)


def test_schedule_due_once_per_period():
    s = Schedule("monthly", "00:00")
    assert s.due(None, ns("2024-01-15"))
    assert not s.due(ns("2024-01-15 21:00"), ns("2024-01-31 21:00"))
    assert s.due(ns("2024-01-31 21:00"), ns("2024-02-01 21:00"))


def test_triggers():
    w, p0 = {"A": 0.5, "B": 0.5}, {"A": 100.0, "B": 100.0}
    assert performance_since(w, p0, {"A": 110.0, "B": 100.0}) == pytest.approx(0.05)
    d = drifted_weights(w, p0, {"A": 110.0, "B": 100.0})
    assert d["A"] == pytest.approx(0.55 / 1.05)
    assert deviation(w, d) == pytest.approx(2 * (0.55 / 1.05 - 0.5))
    t = Triggers(performance=0.05, drift=0.05)
    assert trigger_for(t, w, p0, {"A": 110.0, "B": 100.0}) == "performance"
    assert trigger_for(t, w, p0, {"A": 112.0, "B": 90.0}) == "drift"  # +1 %, but weights moved 11 %
    assert trigger_for(t, w, p0, {"A": 101.0, "B": 100.0}) is None


def _series(n_days: int, symbols: list[str], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    drift = np.linspace(0.0002, 0.0012, len(symbols))
    rets = rng.normal(drift, 0.01, size=(n_days, len(symbols)))
    return {s: 100 * np.cumprod(1 + rets[:, i]) for i, s in enumerate(symbols)}


def _envelopes(series, days, symbols, feature=True, order="by_day"):
    envs = []
    for d, day in enumerate(days):
        for j, s in enumerate(symbols):
            ts = int((day + pd.Timedelta(hours=21)).value)
            ev = (FeatureVector(symbol=s, ts_event=ts, ts_ingest=ts, ts_proc=0, seq=d + 1, source="bar",
                                price=float(series[s][d]), values={}) if feature else
                  Bar(symbol=s, ts_event=ts, open=1, high=1, low=1, close=float(series[s][d])))
            envs.append(Envelope("features.v1" if feature else "bars.v1", j % 6, d, s.encode(), ev))
    if order == "by_symbol":  # as a consumer may read partitions one after the other
        envs.sort(key=lambda e: (e.partition, e.event.symbol, e.event.ts_event))
    return envs


SYMS = ["A", "B", "C", "D", "E"]
DAYS = pd.date_range("2024-01-01", periods=90, freq="B", tz="UTC")


def _config(**kw) -> PortfolioConfig:
    base = dict(symbols=SYMS, lookback=40, min_history=30, risk_free_rate=0.0,
                schedule={"frequency": "monthly"}, triggers={"performance": None, "drift": None},
                constraints={"max_weight": 0.4})
    base.update(kw)
    return PortfolioConfig.from_mapping(base)


def _outputs(proc, envs):
    res = proc.process(envs)
    assert not res.rejected
    return res.outputs


def test_rebalances_on_schedule_and_reports():
    proc = PortfolioProcessor(_config(), clock=lambda: 7)
    outs = _outputs(proc, _envelopes(_series(90, SYMS), DAYS, SYMS))
    targets = [o.event for o in outs if isinstance(o.event, TargetPortfolio)]
    reports = [o.event for o in outs if isinstance(o.event, RebalanceReport)]
    assert len(targets) == len(reports) >= 3
    first_day = pd.Timestamp(targets[0].ts_event, tz="UTC")
    assert first_day == DAYS[30] + pd.Timedelta(hours=21)  # the first row with min_history returns
    later = [pd.Timestamp(t.ts_event, tz="UTC") for t in targets[1:]]
    assert all(d.day <= 3 for d in later)  # the first business day of each month
    t, r = targets[1], reports[1]
    assert sum(t.weights.values()) == pytest.approx(1.0, abs=1e-6)
    assert max(t.weights.values()) <= 0.4 + 1e-6
    assert t.rebalance_id == r.rebalance_id == f"main:{t.ts_event}"
    assert r.previous_weights and r.new_weights == t.weights and r.trigger == "schedule"
    assert r.expected_volatility > 0 and r.sharpe == pytest.approx(r.expected_return / r.expected_volatility)
    assert r.estimated_costs == pytest.approx(0.001 * r.turnover) and r.turnover > 0


def test_bars_input_and_interleaving_give_the_same_targets():
    series = _series(60, SYMS)
    a = PortfolioProcessor(_config(inputs=["features.v1"]), clock=lambda: 0)
    b = PortfolioProcessor(_config(inputs=["bars.v1"]), clock=lambda: 0)
    ta = [o.event for o in _outputs(a, _envelopes(series, DAYS[:60], SYMS)) if o.topic == "targets.v1"]
    envs = _envelopes(series, DAYS[:60], SYMS, feature=False, order="by_symbol")
    tb = []
    for i in range(0, len(envs), 37):  # in odd-sized batches
        tb += [o.event for o in _outputs(b, envs[i:i + 37]) if o.topic == "targets.v1"]
    assert [t.weights for t in ta] == [t.weights for t in tb] and ta


def test_performance_trigger():
    series = _series(60, SYMS)
    series["A"][45:] *= 1.5  # a jump after the first rebalance
    cfg = _config(triggers={"performance": 0.05, "drift": None}, constraints={"max_weight": 0.4, "min_weight": 0.1})
    proc = PortfolioProcessor(cfg, clock=lambda: 0)
    targets = [o.event for o in _outputs(proc, _envelopes(series, DAYS[:60], SYMS)) if o.topic == "targets.v1"]
    perf = [t for t in targets if t.trigger == "performance"]
    assert perf and pd.Timestamp(perf[0].ts_event, tz="UTC").normalize() == DAYS[45]


def test_infeasible_keeps_previous_targets_and_alerts():
    series = _series(70, SYMS)
    proc = PortfolioProcessor(_config(), clock=lambda: 0)
    envs = _envelopes(series, DAYS[:70], SYMS)
    first = _outputs(proc, envs[: 40 * 5])
    before = [o.event for o in first if o.topic == "targets.v1"][-1].weights
    proc._constraints.max_weight = 0.1  # 5 symbols x 10 % < 100 %
    outs = _outputs(proc, envs[40 * 5:])
    assert not [o for o in outs if o.topic == "targets.v1"]
    alert = next(o.event for o in outs if isinstance(o.event, Alert))
    report = next(o.event for o in outs if isinstance(o.event, RebalanceReport))
    assert alert.type == "optimizer_infeasible" and "weight_bounds" in alert.message
    assert report.status == "infeasible" and report.conflicts == ["weight_bounds"]
    assert proc.state.weights == before == report.new_weights


def test_snapshot_restore_continues_identically():
    series = _series(70, SYMS)
    envs = _envelopes(series, DAYS[:70], SYMS)
    whole = PortfolioProcessor(_config(), clock=lambda: 0)
    expected = [o.event for o in _outputs(whole, envs) if o.topic == "targets.v1"]
    first = PortfolioProcessor(_config(), clock=lambda: 0)
    got = [o.event for o in _outputs(first, envs[:180]) if o.topic == "targets.v1"]
    second = PortfolioProcessor(_config(), clock=lambda: 0)
    second.restore(0, first.snapshot(3))
    got += [o.event for o in _outputs(second, envs[180:]) if o.topic == "targets.v1"]
    assert [(t.rebalance_id, t.weights) for t in got] == [(t.rebalance_id, t.weights) for t in expected]


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(Exception):
        PortfolioConfig.from_mapping({"constraints": {"max_wieght": 0.2}})
    with pytest.raises(ValueError):
        PortfolioConfig.from_mapping({"objective": "max_fun"})


def test_create_processor_and_cli_registration(tmp_path):
    from consumers.portfolio import create_processor
    from ticktide.cli import build_parser

    cfg = tmp_path / "p.toml"
    cfg.write_text('[portfolio]\nportfolio_id = "x"\nrisk_model = "ledoit_wolf"\n[portfolio.schedule]\nfrequency = "weekly"\n')
    proc = create_processor(str(cfg))
    assert proc.config.portfolio_id == "x" and proc.config.schedule.frequency == "weekly"
    prices = tmp_path / "p.csv"
    prices.write_text("date,A,B\n")
    args = build_parser().parse_args(["workflow", "run", "--prices", str(prices), "--symbols", "A,B", "--start",
                                      "2020-01-01", "--end", "2020-12-31", "--out", "o"])
    assert callable(args.func)
