"""The historical workflow: CLI, outputs, metrics vs empyrical, determinism, live/replay parity."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticktide.cli import main
from tests.helpers import replay_small_workflow, write_small_workflow_config

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
SYMBOLS = "GOOG,AAPL,FB,BABA,AMZN,GE,AMD,WMT,BAC,GM,T,UAA,SHLD,XOM,RRC,BBY,MA,PFE,JPM,SBUX"


@pytest.fixture(scope="module")
def two_years(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf")
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", SYMBOLS, "--start", "2016-04-11",
               "--end", "2018-04-11", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_two_year_run_writes_results_and_report(two_years):
    r = json.loads((two_years / "results.json").read_text())
    assert r["symbols"] == SYMBOLS.split(",")
    assert r["days"] > 500 and len(r["daily_returns"]) == r["days"] - 1
    assert r["optimal_weights"] and sum(r["optimal_weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert r["rebalances"] and r["trades"] and r["dead_letters"] == 0
    assert {s["scenario"] for s in r["stress_results"]} == {
        "market_crash", "volatility_spike_var95", "liquidity_crisis", "historical_worst_window"}
    assert r["risk_level"] in ("low", "medium", "high")
    assert sum(r["risk_contributions"].values()) == pytest.approx(1.0, abs=1e-6)
    report = (two_years / "report.md").read_text()
    for png in ("equity.png", "drawdown.png", "weights.png", "risk_contributions.png"):
        assert (two_years / png).stat().st_size > 1000 and f"]({png})" in report


def test_reported_metrics_equal_empyrical_on_the_return_series(two_years):
    import empyrical as ep

    r = json.loads((two_years / "results.json").read_text())
    rets = np.array([d["return"] for d in r["daily_returns"]])
    m = r["risk_metrics"]
    assert m["volatility"] == pytest.approx(ep.annual_volatility(rets), rel=1e-9)
    assert r["risk_free_rate"] == 0.02  # the optimizer's, stated in the results and the report
    assert m["sharpe"] == pytest.approx(ep.sharpe_ratio(rets, risk_free=0.02 / 252), rel=1e-9)
    assert m["sortino"] == pytest.approx(ep.sortino_ratio(rets, required_return=0.02 / 252), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(ep.max_drawdown(rets), rel=1e-9)
    assert m["var_95_historical"] == pytest.approx(ep.value_at_risk(rets, 0.05), rel=1e-9)
    assert m["cvar_95_historical"] == pytest.approx(ep.conditional_value_at_risk(rets, 0.05), rel=1e-9)
    value = r["initial_cash"] * np.prod(1 + rets)
    assert value == pytest.approx(r["final_value"], rel=1e-9)


def test_two_runs_give_identical_results(two_years, tmp_path):
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", SYMBOLS, "--start", "2016-04-11",
               "--end", "2018-04-11", "--out", str(tmp_path), "--no-progress", "--no-report"])
    assert rc == 0
    assert (tmp_path / "results.json").read_bytes() == (two_years / "results.json").read_bytes()


def test_long_ohlcv_csv_and_bad_input(tmp_path, capsys):
    wide = pd.read_csv(DATA, parse_dates=["date"]).set_index("date")[["AAPL", "MA", "JPM", "XOM"]]
    long = wide.loc["2016-01-01":"2016-12-31"].stack().rename("close").reset_index()
    long.columns = ["date", "symbol", "close"]
    long["open"], long["high"], long["low"], long["volume"] = long.close, long.close * 1.01, long.close * 0.99, 1e6
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    out = tmp_path / "out"
    rc = main(["workflow", "run", "--prices", str(path), "--symbols", "AAPL,MA,JPM,XOM", "--start", "2016-06-01",
               "--end", "2016-12-31", "--config", str(write_small_workflow_config(tmp_path)), "--out", str(out),
               "--no-progress", "--no-report"])
    assert rc == 0
    r = json.loads((out / "results.json").read_text())
    assert r["first_trading_day"] == "2016-06-01" and r["rebalances"][0]["date"] == "2016-06-01"
    assert max(r["optimal_weights"].values()) <= 0.4 + 1e-6
    rc = main(["workflow", "run", "--prices", str(path), "--symbols", "AAPL,NOPE", "--start", "2016-06-01",
               "--end", "2016-12-31", "--out", str(out), "--no-progress"])
    assert rc == 2 and "NOPE" in capsys.readouterr().err


async def test_live_consumers_and_workflow_replay_agree(tmp_path):
    """Same bars: live runners on a bus (all bars at once) vs the stage-by-stage workflow replay."""
    from streaming.bus.memory import MemoryBus
    from streaming.codec import decode, encode, key_for
    from streaming.runner import Runner, RunnerSettings

    wf = await replay_small_workflow(tmp_path)
    replayed = wf.replayed

    bus = MemoryBus("memory://live-parity")
    for b in wf.bars():
        await bus.publish("bars.v1", key_for("bars.v1", b), encode(b))
    stop = asyncio.Event()
    procs = wf.processors()[:3]
    runners = [Runner(p, bus, RunnerSettings(max_records=97, poll_timeout_ms=20), stop) for p in procs]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    last = None
    try:
        for _ in range(300):  # until every group has consumed everything and the output stopped growing
            await asyncio.sleep(0.1)
            sizes = tuple([len(await bus.read_all(t)) for t in ("features.v1", "targets.v1", "orders.v1", "fills.v1")])
            lag = sum([sum((await r.subscription.lag()).values()) for r in runners if r.subscription is not None])
            if lag == 0 and sizes == last and sizes[1] > 0:
                break
            last = sizes
    finally:
        stop.set()
    await asyncio.gather(*tasks)

    records = {t: await bus.read_all(t) for t in ("features.v1", "targets.v1", "orders.v1", "fills.v1")}

    def live(topic):
        return [decode(topic, r.value) for r in sorted(records[topic], key=lambda r: (r.partition, r.offset))]

    feats = lambda fs: sorted((f.symbol, f.seq, f.price, tuple(sorted(f.values.items()))) for f in fs)  # noqa: E731
    assert feats(live("features.v1")) == feats(replayed.features)
    assert [(t.rebalance_id, t.weights) for t in live("targets.v1")] == \
        [(t.rebalance_id, t.weights) for t in replayed.targets]
    orders = lambda os: sorted((o.order_id, o.side, o.quantity, o.status) for o in os)  # noqa: E731
    a, b = orders(live("orders.v1")), orders(replayed.orders)
    assert a == b and b
    fills = lambda fs: sorted((f.fill_id, f.price, f.quantity, f.fee, f.ts_event) for f in fs)  # noqa: E731
    assert fills(live("fills.v1")) == fills(replayed.fills)
