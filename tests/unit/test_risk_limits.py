"""Risk limits with hysteresis: a tolerance band, a minimum episode length, one alert per edge."""

from __future__ import annotations

from prometheus_client import REGISTRY

from consumers.portfolio.config import ConstraintsConfig
from consumers.risk import limits
from consumers.risk.config import LimitsConfig, RiskConfig
from consumers.risk.processor import RiskProcessor
from schemas.events import Alert, Fill, RiskUpdate, Tick
from streaming.processor import Envelope

DAY = 86_400 * 10**9
T0 = 1_700_006_400 * 10**9
LIM = LimitsConfig(max_position=0.25, max_volatility=None, max_drawdown=None, breach_tolerance=0.02,
                   min_episode_bars=3)


def update(day: int, **exposures) -> RiskUpdate:
    return RiskUpdate(portfolio_id="p", ts_event=T0 + day * DAY, ts_proc=0, value=1.0, cash=0.0,
                      exposures=exposures)


def run(path, lim=LIM):
    """(day, kind) of every transition for a path of exposures of A, one update per day."""
    episodes: dict = {}
    out = []
    for day, x in enumerate(path):
        u = update(day) if x is None else update(day, A=x)
        out += [(day, t.kind) for t in limits.step(episodes, "p", u, lim, day)]
    return out, episodes


def test_tolerance_band_and_clear_below_the_limit():
    # 25.4 % is within the 2 % band of a 25 % limit; 25.6 % is a breach; 25.1 % does not clear it
    out, open_ = run([0.20, 0.254, 0.256, 0.30, 0.251, 0.252, 0.251, 0.249, 0.254])
    assert out == [(2, "breach"), (7, "resolved")]
    assert not open_


def test_minimum_episode_length_in_bars():
    # back below the limit the next day: the episode still lasts min_episode_bars (3) bars
    out, _ = run([0.30, 0.20, 0.20, 0.20, 0.20])
    assert out == [(0, "breach"), (3, "resolved")]
    # a value that hovers around the limit is one episode, not an alert per crossing
    out, open_ = run([0.26, 0.24, 0.249, 0.26, 0.27, 0.252])
    assert out == [(0, "breach")] and list(open_) == ["p:max_position:A"]


def test_a_closed_position_resolves_its_episode():
    out, open_ = run([0.40, 0.40, 0.40, None])
    assert out == [(0, "breach"), (3, "resolved")] and not open_


def test_the_peak_and_ids_are_carried_to_the_resolve():
    episodes: dict = {}
    alerts = []
    for day, x in enumerate([0.30, 0.35, 0.28, 0.24]):
        u = update(day, A=x)
        for t in limits.step(episodes, "p", u, LIM, day):
            alerts.append(limits.breach_alert(t, "p", u, 0.02) if t.kind == "breach"
                          else limits.resolved_alert(t, "p", u))
    breach, resolved = alerts
    assert breach.alert_id == f"risk:p:max_position:A:{T0}" and breach.details["breach_at"] == 0.25 * 1.02
    assert resolved.type == "limit_resolved" and resolved.details["resolves"] == breach.alert_id
    assert resolved.details["peak"] == 0.35 and resolved.details["bars"] == 3
    assert resolved.severity == breach.severity == "warning"
    assert "back below the limit 25.00%" in resolved.message and "peak 35.00%" in resolved.message


def test_default_limits_sit_above_the_optimizer_bounds():
    lim, cons = LimitsConfig(), ConstraintsConfig()
    assert lim.max_position > cons.max_weight
    assert cons.max_volatility is None or lim.max_volatility > cons.max_volatility


def _gauge(limit: str) -> float:
    return REGISTRY.get_sample_value("ticktide_risk_limit_breached", {"portfolio": "gauge-p", "limit": limit})


def test_live_consumer_alerts_once_per_edge_and_the_gauge_follows_the_episode():
    cfg = RiskConfig(initial_cash=100_000.0, publish_interval_s=0.0,
                     limits=LimitsConfig(max_position=0.5, max_volatility=None, max_drawdown=None,
                                         min_episode_bars=1))
    proc = RiskProcessor(cfg, clock=lambda: 0)
    fill = Fill(fill_id="f", order_id="o", portfolio_id="gauge-p", symbol="A", side="buy", quantity=800,
                price=100.0, ts_event=T0, ts_proc=0)
    alerts = [o.event for o in proc.process([Envelope("fills.v1", 0, 0, b"", fill)]).outputs
              if isinstance(o.event, Alert)]
    assert [a.type for a in alerts] == ["limit_breach"] and _gauge("max_position") == 1

    def mark(minutes: int, price: float):
        tick = Tick(symbol="A", venue="v", kind="trade", ts_event=T0 + minutes * 60 * 10**9, ts_recv=0,
                    price=price, size=1.0)
        res = proc.process([Envelope("ticks.v1", 0, minutes, b"", tick)])
        return [o.event for o in res.outputs if isinstance(o.event, Alert)]

    # marks all day long while breached: no more alerts (the old cooldown re-alerted every hour)
    assert [a for m in range(1, 24 * 60, 30) for a in mark(m, 100.0)] == []
    # next day, A falls so the position is below 50 %: one resolve
    [resolved] = mark(24 * 60 + 1, 20.0)
    assert resolved.type == "limit_resolved" and resolved.details["resolves"] == alerts[0].alert_id
    assert _gauge("max_position") == 0 and mark(24 * 60 + 2, 20.0) == []
