"""The honest workflow report: realized costs, risk-free rate, annualized return, Calmar, benchmark,
rolling charts, attribution, readable weights, failed rebalances in the headline and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

from ticktide.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
SYMBOLS = "GOOG,AAPL,FB,BABA,AMZN,AMD,WMT,BAC,GM,T,UAA,SHLD,XOM,RRC,BBY,MA,PFE,JPM,SBUX"  # GE is the benchmark


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf")
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", SYMBOLS, "--start", "2017-01-03",
               "--end", "2017-12-29", "--benchmark", "GE", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_realized_costs_are_fees_plus_slippage_next_to_the_estimate(run):
    out, r = run
    c, trades = r["costs"], r["trades"]
    assert c["fees"] == pytest.approx(sum(t["fee"] for t in trades), rel=1e-12)
    assert c["slippage"] == pytest.approx(sum(t["slippage"] for t in trades), rel=1e-12)
    assert c["slippage"] > c["fees"] > 0 and c["realized"] == pytest.approx(c["fees"] + c["slippage"])
    per = c["per_rebalance"]
    assert len(per) == len(r["rebalances"]) and sum(p["fills"] for p in per) == len(trades)
    assert sum(p["realized"] for p in per) == pytest.approx(c["realized"], rel=1e-9)
    assert all(p["estimated_pct"] == pytest.approx(rb["estimated_costs"]) for p, rb in zip(per, r["rebalances"]))
    report = (out / "report.md").read_text()
    assert "## Costs: realized vs the optimizer's estimate" in report and "est. costs (optimizer)" in report
    assert f"{c['slippage']:,.2f}" in report


def test_metrics_and_benchmark_match_empyrical(run):
    out, r = run
    rets = np.array([d["return"] for d in r["daily_returns"]])
    px = pd.read_csv(DATA, index_col=0, parse_dates=True)["GE"].loc["2017-01-03":"2017-12-29"]
    bench = px.pct_change().iloc[1:].to_numpy()
    m = r["risk_metrics"]
    assert r["risk_free_rate"] == 0.02 and r["benchmark"]["symbol"] == "GE"
    assert m["annual_return"] == pytest.approx(ep.annual_return(rets), rel=1e-9)
    assert m["calmar"] == pytest.approx(ep.calmar_ratio(rets), rel=1e-9)
    assert m["beta"] == pytest.approx(ep.beta(rets, bench), rel=1e-9)
    assert m["alpha"] == pytest.approx(ep.alpha(rets, bench, risk_free=0.02 / 252), rel=1e-9)
    assert m["information_ratio"] == pytest.approx(ep.excess_sharpe(rets, bench) * np.sqrt(252), rel=1e-9)
    assert r["benchmark"]["total_return"] == pytest.approx(px.iloc[-1] / px.iloc[0] - 1, rel=1e-12)
    report = (out / "report.md").read_text()
    for needle in ("Sharpe (risk-free rate 2.00%)", "| annualized return |", "| Calmar", "| beta to GE |",
                   "| tracking error (annualized) |", "risk-free rate of 2.00%"):
        assert needle in report
    crash = next(s for s in r["stress_results"] if s["scenario"] == "market_crash")
    assert "GE falls -30%" in crash["method"] and "| method |" in report


def test_attribution_sums_to_the_runs_pnl(run):
    out, r = run
    a = r["attribution"]
    assert set(a) == {t["symbol"] for t in r["trades"]}
    assert sum(v["pnl"] for v in a.values()) == pytest.approx(r["final_value"] - r["initial_cash"], rel=1e-9)
    assert sum(v["fees"] for v in a.values()) == pytest.approx(r["costs"]["fees"], rel=1e-12)
    assert "## P&L attribution" in (out / "report.md").read_text()


def test_rolling_statistics_match_empyrical(run):
    from ticktide.workflow.analytics import rolling_stats

    _, r = run
    rets = pd.Series([d["return"] for d in r["daily_returns"]])
    roll = rolling_stats(rets, 0.02).dropna()
    assert len(roll) == len(rets) - 62
    np.testing.assert_allclose(roll["volatility"], ep.roll_annual_volatility(rets, 63).dropna(), rtol=1e-9)
    np.testing.assert_allclose(roll["sharpe"], ep.roll_sharpe_ratio(rets, 63, risk_free=0.02 / 252).dropna(),
                               rtol=1e-9)
    np.testing.assert_allclose(roll["max_drawdown"], ep.roll_max_drawdown(rets, 63).dropna(), rtol=1e-9)


def test_charts_benchmark_markers_and_readable_weights(run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ticktide.workflow import report_sections as sections

    out, r = run
    for png in ("equity.png", "drawdown.png", "rolling.png", "weights.png", "risk_contributions.png"):
        assert (out / png).stat().st_size > 10_000 and f"]({png})" in (out / "report.md").read_text()
    days = pd.DatetimeIndex([d["date"] for d in r["daily_returns"]], tz="UTC")
    values = pd.Series(np.linspace(1.0, 2.0, len(days)), index=days)
    weights = pd.DataFrame({f"S{i:02d}": np.full(len(days), 1 / 19) for i in range(19)}, index=days)
    fig = sections.equity_chart(plt, r, {"values": values, "benchmark": values * 0.9})
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["portfolio", "GE (same start value)", "rebalance"]
    fig = sections.weights_chart(plt, matplotlib, {"weights": weights})
    handles, labels = fig.axes[0].get_legend_handles_labels()
    assert len(labels) == 13 and labels[-1] == "other (7)"
    colours = [tuple(np.ravel(h.get_facecolor())[:4]) for h in handles]
    assert len(set(colours)) == len(colours)
    plt.close("all")


def test_a_run_where_no_rebalance_succeeds_says_so_and_fails(tmp_path, capsys):
    cfg = tmp_path / "tight.toml"
    # (too few symbols for max_weight is refused before the run: an infeasible volatility cap fails every rebalance)
    cfg.write_text("[portfolio.constraints]\nmax_volatility = 0.001\n")
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", "AAPL,MA,JPM,WMT,XOM", "--start", "2016-04-11",
               "--end", "2016-05-31", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"(set in {cfg} [portfolio.constraints] max_volatility)" in err and "max_volatility 0.10%" in err
    assert "no rebalance succeeded" in err
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["rebalances_ok"] == 0 and r["failed_rebalances"] and not r["trades"]
    report = (tmp_path / "o" / "report.md").read_text()
    assert "rebalances failed" in report and "No rebalance succeeded" in report and "## Failed rebalances" in report
    assert "No benchmark configured: `market_crash` applies the shock uniformly" in report


def test_benchmark_from_the_workflow_or_risk_config(tmp_path, capsys):
    from ticktide.workflow.run import WorkflowConfig

    cfg = tmp_path / "wf.toml"
    cfg.write_text('[workflow]\nbenchmark = "SPY"\n')
    assert WorkflowConfig.load(str(cfg)).risk.benchmark == "SPY"
    cfg.write_text('[workflow]\nbenchmark = "SPY"\n[risk]\nbenchmark = "QQQ"\n')
    assert WorkflowConfig.load(str(cfg)).risk.benchmark == "QQQ"
    cfg.write_text('[workflow]\nbenchmark = "NOPE"\n')
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", "AAPL,MA", "--start", "2016-04-11",
               "--end", "2016-04-20", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err == ("ticktide workflow run: benchmark NOPE is not in the price file (add its closes or "
                               "choose another --benchmark)\n")
