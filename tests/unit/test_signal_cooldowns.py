"""Cooldowns that explain themselves: a suppressed signal is logged (INFO, rate-limited), and a
stream whose event time goes back (the same recording replayed again) restarts the cooldown."""

from __future__ import annotations

import logging

from consumers.signals.config import SignalsConfig
from consumers.signals.engine import SignalEngine
from consumers.signals.plugins import Plugin, SignalHit
from schemas.events import FeatureVector

S = 1_000_000_000


def engine() -> SignalEngine:
    config = SignalsConfig(cooldown_s=300)
    for rule in ("price_movement", "volume_spike", "rsi", "macd", "breakout"):
        getattr(config.rules, rule).enabled = False
    always = Plugin("always", lambda fv, state: SignalHit("review", "low", 1.0, "always"), cooldown_s=300)
    return SignalEngine(config, plugins=[always])


def at(t_s: float, seq: int) -> FeatureVector:
    return FeatureVector(symbol="BTCUSDT", ts_event=int(t_s * S), ts_ingest=0, ts_proc=0, seq=seq, source="tick",
                         price=1.0, values={})


def test_cooldown_suppresses_and_says_so_once_in_a_while(caplog):
    eng = engine()
    with caplog.at_level(logging.INFO, logger="consumers.signals.engine"):
        emitted = [len(eng.on_features(at(1000 + i, i + 1), 0)) for i in range(50)]
    assert emitted == [1] + [0] * 49
    lines = [r.getMessage() for r in caplog.records if "suppressed by its cooldown" in r.getMessage()]
    assert len(lines) == 1  # 49 suppressions, one line (rate-limited)
    assert "BTCUSDT always" in lines[0] and "299 s (event time) left" in lines[0]
    assert eng._suppressed.count == 49


def test_a_replay_from_an_earlier_time_restarts_the_cooldown(caplog):
    eng = engine()
    first = [len(eng.on_features(at(1000 + i, i + 1), 0)) for i in range(10)]
    with caplog.at_level(logging.INFO, logger="consumers.signals.engine"):
        second = [len(eng.on_features(at(1000 + i, 11 + i), 0)) for i in range(10)]
    assert first == [1] + [0] * 9
    assert second == [1] + [0] * 9  # the replay signals again instead of staying silent
    assert any("event time went back 9 s" in r.getMessage() for r in caplog.records)
    # sub-second jitter backwards is not a rewind: still in cooldown
    assert eng.on_features(at(1009 - 0.5, 21), 0) == []
