"""Risk: metrics vs empyrical-reloaded (1e-9), risk level, stress, book keeping, processor, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import empyrical as ep
import msgspec
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from consumers.risk import metrics as m
from consumers.risk.commands import assess, read_prices, read_weights
from consumers.risk.config import RiskConfig
from consumers.risk.processor import RiskProcessor
from consumers.risk.stress import Z95, liquidity_crisis, market_crash, run_all, volatility_spike
from schemas.events import Alert, Fill, RiskUpdate, TargetPortfolio, Tick
from streaming.processor import Envelope

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
DAY = 86_400 * 10**9
T0 = 1_700_000_000 // 86_400 * DAY
WEIGHTS = {"AAPL": 0.3, "MA": 0.2, "JPM": 0.25, "XOM": 0.15}


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return read_prices(str(DATA))


def _close(a, b):
    assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


def _check_against_empyrical(r: np.ndarray):
    _close(m.annualized_volatility(r), ep.annual_volatility(r))
    _close(m.var_historical(r), ep.value_at_risk(r, 0.05))
    _close(m.cvar_historical(r), ep.conditional_value_at_risk(r, 0.05))
    _close(m.max_drawdown(r), ep.max_drawdown(r))
    _close(m.sharpe(r), ep.sharpe_ratio(r))
    _close(m.sortino(r), ep.sortino_ratio(r))
    mu, sd = np.mean(r), np.std(r, ddof=1)
    _close(m.var_parametric(r), norm.ppf(0.05, mu, sd))
    _close(m.cvar_parametric(r), mu - sd * norm.pdf(norm.ppf(0.05)) / 0.05)


def test_metrics_match_empyrical_on_every_stock(prices):
    for sym in prices.columns:
        r = prices[sym].dropna().pct_change().iloc[1:].to_numpy()
        _check_against_empyrical(r)
        _check_against_empyrical(r[-252:])


def test_cli_portfolio_matches_empyrical(prices, tmp_path, capsys):
    px = prices[list(WEIGHTS)].dropna()
    port = (px.pct_change().iloc[1:] @ pd.Series(WEIGHTS)).to_numpy()[-252:]
    w = tmp_path / "w.csv"
    w.write_text("symbol,weight\n" + "\n".join(f"{k},{v}" for k, v in WEIGHTS.items()))
    from ticktide.cli import main
    assert main(["risk", "--prices", str(DATA), "--weights", str(w)]) == 0
    out = json.loads(capsys.readouterr().out)
    _close(out["volatility"], ep.annual_volatility(port))
    _close(out["var_95_historical"], ep.value_at_risk(port))
    _close(out["cvar_95_historical"], ep.conditional_value_at_risk(port))
    _close(out["max_drawdown"], ep.max_drawdown(port))
    _close(out["sharpe"], ep.sharpe_ratio(port, risk_free=0.02 / 252))  # the stated default rate
    _close(out["sortino"], ep.sortino_ratio(port, required_return=0.02 / 252))
    assert out["risk_free_rate"] == 0.02
    assert out["exposures"] == WEIGHTS and out["risk_level"] in ("low", "medium", "high")
    assert [s["scenario"] for s in out["stress"]] == ["market_crash", "volatility_spike_var95", "liquidity_crisis",
                                                      "historical_worst_window"]
    assert all(s["portfolio_loss"] < 0 and s["worst_position"] in WEIGHTS for s in out["stress"])
    assert out["limit_breaches"] == []  # AAPL 30 % is within the default limit 30 % (breach above 30.6 %)
    tight = tmp_path / "risk.toml"
    tight.write_text("[limits]\nmax_position = 0.25\n")
    assert main(["risk", "--prices", str(DATA), "--weights", str(w), "--config", str(tight)]) == 0
    [breach] = json.loads(capsys.readouterr().out)["limit_breaches"]
    assert "AAPL" in breach and "30.00%" in breach and "25.00%" in breach
    assert read_weights(str(w)) == WEIGHTS


def test_risk_level_thresholds():
    assert m.risk_level(0.09, -0.10, -0.19) == "low"
    assert m.risk_level(0.10, -0.10, -0.10) == "medium"
    assert m.risk_level(0.05, -0.16, 0.10) == "medium"
    assert m.risk_level(0.05, -0.10, -0.25) == "medium"
    assert m.risk_level(0.20, -0.10, -0.10) == "high"
    assert m.risk_level(0.15, -0.26, -0.10) == "high"
    assert m.risk_level(0.15, -0.20, -0.30) == "high"
    assert m.risk_metrics([0.01])["risk_level"] is None


def test_stress_scenarios():
    w = {"AAA": 0.6, "BBB": -0.2, "CCC": 0.0}
    crash = market_crash(w)  # no benchmark: a uniform shock
    assert crash.portfolio_loss == pytest.approx(0.4 * -0.30)
    assert crash.worst_position == "AAA" and crash.worst_position_loss == pytest.approx(-0.18)
    rng = np.random.default_rng(1)
    hist = {"AAA": rng.normal(0, 0.02, 500), "BBB": rng.normal(0, 0.01, 500)}
    vs = volatility_spike({"AAA": 0.5, "BBB": 0.5}, hist)
    sd_a = np.std(hist["AAA"], ddof=1)
    assert vs.worst_position == "AAA"
    assert vs.worst_position_loss == pytest.approx(Z95 * 2 * np.sqrt(10) * 0.5 * sd_a)
    assert vs.worst_position_loss + volatility_spike({"BBB": 0.5}, hist).portfolio_loss <= vs.portfolio_loss  # diversified
    liq = liquidity_crisis({"AAA": 0.5}, hist, spreads={"AAA": 0.002})
    assert liq.portfolio_loss == pytest.approx(-0.5 * 0.002 * 2 / 2 + Z95 * np.sqrt(5 / 3) * 0.5 * sd_a)
    assert [r.scenario for r in run_all({})] == ["market_crash", "volatility_spike_var95", "liquidity_crisis",
                                                 "historical_worst_window"]


def _env(topic, ev, offset=0, partition=0):
    return Envelope(topic, partition, offset, None, ev)


def _fill(i, sym, side, qty, px, ts, pid="p1", fee=0.0):
    return Fill(fill_id=f"f{i}", order_id=f"o{i}", portfolio_id=pid, symbol=sym, side=side, quantity=qty,
                price=px, fee=fee, ts_event=ts, ts_proc=0)


def _trade(sym, px, ts):
    return Tick(symbol=sym, venue="t", kind="trade", ts_event=ts, ts_recv=ts, price=px, size=1.0)


def test_processor_book_keeping_metrics_and_limit_episodes(prices):
    cfg = RiskConfig.from_mapping({"initial_cash": 100_000.0, "sample_interval_s": 86400, "lookback": 100,
                                   "publish_interval_s": 86400, "sectors": {"AAPL": "tech", "JPM": "fin"},
                                   "limits": {"max_position": 0.5, "max_volatility": None,
                                              "max_drawdown": None, "min_episode_bars": 5}})
    proc = RiskProcessor(cfg, clock=lambda: 42)
    px = prices[["AAPL", "JPM"]].dropna().iloc[-101:]
    a0, j0 = px.iloc[0]
    res = proc.process([_env("fills.v1", _fill(1, "AAPL", "buy", 300, a0, T0, fee=1.0)),
                        _env("fills.v1", _fill(2, "JPM", "buy", 100, j0, T0 + 1)),
                        _env("fills.v1", _fill(2, "JPM", "buy", 100, j0, T0 + 1))])  # replayed fill: ignored
    updates = [o.event for o in res.outputs if isinstance(o.event, RiskUpdate)]
    assert len(updates) == 2
    u = updates[-1]
    assert u.positions == {"AAPL": 300.0, "JPM": 100.0}
    assert u.cash == pytest.approx(100_000 - 300 * a0 - 1.0 - 100 * j0)
    assert u.value == pytest.approx(100_000 - 1.0) and u.pnl == pytest.approx(-1.0)
    assert set(u.sector_exposures) == {"tech", "fin"}
    outs = []
    for d, (ts, (a, j)) in enumerate(px.iloc[1:].iterrows(), start=1):
        batch = [_env("ticks.v1", _trade("AAPL", a, T0 + d * DAY + 10)), _env("ticks.v1", _trade("JPM", j, T0 + d * DAY + 20))]
        outs += proc.process(batch).outputs
    # equity is sampled once a day (last value of the day): compare with empyrical on those
    values = [100_000 - 300 * a0 - 1.0 - 100 * j0 + 300 * a + 100 * j for a, j in px.to_numpy()]
    eq = np.array(values)
    r = eq[1:] / eq[:-1] - 1
    assert [o.event for o in outs if isinstance(o.event, RiskUpdate)]  # published as days close
    last = proc.update_for(proc.book("p1"), T0 + 100 * DAY + 20)
    _close(last.volatility, ep.annual_volatility(r[-100:]))
    _close(last.max_drawdown, ep.max_drawdown(r[-100:]))
    _close(last.sharpe, ep.sharpe_ratio(r[-100:], risk_free=0.02 / 252))
    _close(last.var_95_historical, ep.value_at_risk(r[-100:]))
    alerts = [o.event for o in res.outputs + outs if isinstance(o.event, Alert)]
    # AAPL around 50 % of the book: breach / resolved pairs, one per episode, deterministic ids
    assert len(alerts) >= 2 and alerts[0].type == "limit_breach" and alerts[0].symbol == "AAPL"
    assert alerts[0].alert_id == f"risk:p1:max_position:AAPL:{alerts[0].ts_event}"
    assert [a.type for a in alerts] == ["limit_breach", "limit_resolved"] * (len(alerts) // 2) + \
        ["limit_breach"] * (len(alerts) % 2)
    for breach, resolved in zip(alerts[::2], alerts[1::2]):
        assert resolved.details["resolves"] == breach.alert_id and resolved.severity == breach.severity
        assert breach.details["observed"] > 0.5 * 1.02 and resolved.details["observed"] < 0.5
        assert (resolved.ts_event - breach.ts_event) // DAY >= 5  # min_episode_bars

    # snapshot/restore continues exactly
    clone = RiskProcessor(cfg, clock=lambda: 42)
    clone.restore(3, proc.snapshot(3))
    nxt = [_env("ticks.v1", _trade("AAPL", a0 * 0.5, T0 + 200 * DAY))]
    assert clone.process(nxt).outputs == proc.process(nxt).outputs

    # a target portfolio triggers the stress tests
    tgt = TargetPortfolio(portfolio_id="p1", rebalance_id="r1", ts_event=T0 + 201 * DAY, ts_proc=0,
                          weights={"AAPL": 0.5, "JPM": 0.5})
    [stressed] = [o.event for o in proc.process([_env("targets.v1", tgt)]).outputs if isinstance(o.event, RiskUpdate)]
    assert [s.scenario for s in stressed.stress] == ["market_crash", "volatility_spike_var95", "liquidity_crisis",
                                                     "historical_worst_window"]


def test_assess_is_the_cli_code_path(prices):
    u = assess(prices, WEIGHTS, RiskConfig(), ts_proc=1)
    assert msgspec.json.decode(msgspec.json.encode(u), type=RiskUpdate) == u
    assert u.positions["AAPL"] * prices["AAPL"].dropna().iloc[-1] == pytest.approx(0.3 * 1_000_000)


def test_stress_requests_on_demand(prices):
    """A StressRequest is answered on risk.v1 with its request_id: on its weights, or on the
    book's current exposures; requests that cannot be answered are dead-lettered, named."""
    from schemas.events import StressRequest

    cfg = RiskConfig.from_mapping({"initial_cash": 100_000.0, "lookback": 50, "publish_interval_s": 86400})
    proc = RiskProcessor(cfg, clock=lambda: 42)
    px = prices[["AAPL", "JPM"]].dropna().iloc[-60:]
    a0, j0 = px.iloc[0]
    proc.process([_env("fills.v1", _fill(1, "AAPL", "buy", 200, a0, T0)),
                  _env("fills.v1", _fill(2, "JPM", "buy", 100, j0, T0 + 1))])
    for d, (_, (a, j)) in enumerate(px.iloc[1:].iterrows(), start=1):
        proc.process([_env("ticks.v1", _trade("AAPL", a, T0 + d * DAY)), _env("ticks.v1", _trade("JPM", j, T0 + d * DAY))])
    ts = T0 + 70 * DAY
    reqs = [StressRequest(request_id="r-book", portfolio_id="p1", ts_event=ts),
            StressRequest(request_id="r-w", portfolio_id="p1", ts_event=ts, weights={"AAPL": 0.9, "JPM": 0.1}),
            StressRequest(request_id="r-new", portfolio_id="p9", ts_event=ts, weights={"JPM": 1.0}),
            StressRequest(request_id="r-unknown", portfolio_id="nobody", ts_event=ts),
            StressRequest(request_id="r-nan", portfolio_id="p1", ts_event=ts, weights={"AAPL": float("nan")})]
    res = proc.process([_env("risk-requests.v1", r, offset=i) for i, r in enumerate(reqs)])
    answers = {o.event.request_id: o.event for o in res.outputs if isinstance(o.event, RiskUpdate)}
    assert set(answers) == {"r-book", "r-w", "r-new"}
    book = proc.book("p1")
    exposures = book.exposures(proc.state.marks)
    assert exposures["AAPL"] > 0.3 and exposures["JPM"] > 0.1
    hist = proc._history(exposures)
    assert len(hist["AAPL"]) == 50  # the scenarios see the sampled return history
    assert answers["r-book"].stress == run_all(exposures, hist, proc.state.spreads, cfg.stress_config())
    w = {"AAPL": 0.9, "JPM": 0.1}
    assert answers["r-w"].stress == run_all(w, proc._history(w), proc.state.spreads, cfg.stress_config())
    assert answers["r-w"].stress != answers["r-book"].stress
    assert answers["r-new"].portfolio_id == "p9" and len(answers["r-new"].stress) == 4
    assert all(a.portfolio_id in ("p1", "p9") and a.ts_event == ts for a in answers.values())
    reasons = {env.event.request_id: why for env, why in res.rejected}
    assert set(reasons) == {"r-unknown", "r-nan"}
    assert "unknown portfolio 'nobody'" in reasons["r-unknown"] and "send weights" in reasons["r-unknown"]
    assert "non-finite weights for AAPL" in reasons["r-nan"]
    assert "nobody" not in proc.state.books  # a refused request leaves no book behind
