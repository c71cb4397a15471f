"""Signals: rules, cooldowns, plug-ins, state, and offline CLI == live consumer (memory bus)."""

from __future__ import annotations

import asyncio
import json

import msgspec
import numpy as np
import pytest

from consumers.signals import SignalEngine, SignalHit, comparable, create_processor
from consumers.signals.commands import parse_lines, run_offline, signals_for_file, to_ns
from consumers.signals.config import SignalsConfig
from consumers.signals.plugins import make_plugin
from consumers.signals.processor import SignalsProcessor
from consumers.signals.rules import crossings
from schemas.events import FeatureVector, Signal
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings

T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000


def fv(symbol="AAA", seq=1, ts=None, price=100.0, **values) -> FeatureVector:
    return FeatureVector(symbol=symbol, ts_event=T0 + seq * SEC if ts is None else ts, ts_ingest=T0, ts_proc=0,
                         seq=seq, source="tick", price=price, values=values)


def only(rule: str, **overrides) -> SignalsConfig:
    rules = {r: {"enabled": r == rule} for r in ("price_movement", "volume_spike", "rsi", "macd", "breakout")}
    rules[rule].update(overrides)
    return SignalsConfig.from_mapping({"cooldown_s": 0, "rules": rules})


def test_price_movement_fires_above_k_times_volatility():
    eng = SignalEngine(only("price_movement", k=2.0))
    assert eng.on_features(fv(seq=1, return_1=0.019, volatility_21=0.01), 0) == []
    [s] = eng.on_features(fv(seq=2, return_1=-0.025, volatility_21=0.01), 0)
    assert (s.type, s.symbol, s.action, s.urgency) == ("price_movement", "AAA", "review", "low")
    assert s.strength == pytest.approx(1.25) and s.features == {"return_1": -0.025, "volatility_21": 0.01}
    assert s.signal_id == "AAA:price_movement:2" and "down" in s.reason
    [s] = eng.on_features(fv(seq=3, return_1=0.05, volatility_21=0.01), 0)
    assert (s.urgency, s.action) == ("high", "consider_trade")
    assert eng.on_features(fv(seq=4, return_1=0.05, volatility_21=None), 0) == []


def test_volume_spike():
    eng = SignalEngine(only("volume_spike", window=5, m=3.0))
    assert eng.on_features(fv(seq=1, volume_ratio_5=2.9), 0) == []
    [s] = eng.on_features(fv(seq=2, volume_ratio_5=4.8), 0)
    assert (s.type, s.action, s.urgency, s.strength) == ("volume_spike", "review", "medium", pytest.approx(1.6))


def test_rsi_crossings():
    eng = SignalEngine(only("rsi"))
    seq = [None, 45.0, 31.0, 29.0, 25.0, 50.0, 69.0, 72.0, 75.0]
    out = [eng.on_features(fv(seq=i + 1, rsi_14=v), 0) for i, v in enumerate(seq)]
    fired = [(i, s[0].action) for i, s in enumerate(out) if s]
    assert fired == [(3, "buy"), (7, "sell")]
    assert out[3][0].features == {"rsi_14": 29.0, "rsi_14_prev": 31.0}


def test_macd_crossings_and_breakouts():
    eng = SignalEngine(only("macd"))
    diffs = [(1.0, 2.0), (1.5, 1.4), (1.6, 1.5), (1.0, 1.2)]
    acts = [[s.action for s in eng.on_features(fv(seq=i + 1, macd=m, macd_signal=g), 0)]
            for i, (m, g) in enumerate(diffs)]
    assert acts == [[], ["buy"], [], ["sell"]]

    eng = SignalEngine(only("breakout", windows=[10, 20]))
    assert eng.on_features(fv(seq=1, price=100, resistance_10=101, support_10=95, resistance_20=103,
                              support_20=90), 0) == []
    [s] = eng.on_features(fv(seq=2, price=102, resistance_10=102, support_10=95, resistance_20=103,
                             support_20=90), 0)
    assert (s.action, s.urgency) == ("buy", "medium") and s.features["resistance_10"] == 101
    [s] = eng.on_features(fv(seq=3, price=89, resistance_10=102, support_10=89, resistance_20=103,
                             support_20=89), 0)
    assert (s.action, s.urgency) == ("sell", "high") and "20-period support" in s.reason


def test_crossings_on_arrays():
    x = np.array([50, 31, 29, np.nan, 25, 35, 29.0])
    assert crossings(x, 30).tolist() == [0, 0, -1, 0, 0, 1, -1]


def test_cooldown_is_per_symbol_and_rule_in_event_time():
    cfg = SignalsConfig.from_mapping({"cooldown_s": 60, "rules": {
        "rsi": {"enabled": False}, "macd": {"enabled": False}, "breakout": {"enabled": False},
        "volume_spike": {"cooldown_s": 10}}})
    eng = SignalEngine(cfg)
    hot = dict(return_1=0.1, volatility_21=0.01, volume_ratio_21=5.0)
    for sym in ("AAA", "BBB"):  # past the warm-up: no rule fires on its inputs' first valid values
        assert eng.on_features(fv(sym, seq=1, ts=T0 - 100 * SEC, return_1=0.0, volatility_21=0.01,
                                  volume_ratio_21=1.0), 0) == []
    got = []
    for sec in (0, 5, 30, 59, 60, 61):
        for sym in ("AAA", "BBB"):
            got += [(sym, s.type, sec) for s in eng.on_features(fv(sym, seq=sec + 2, ts=T0 + sec * SEC, **hot), 0)]
    pm = [(sym, sec) for sym, t, sec in got if t == "price_movement"]
    vs = [(sym, sec) for sym, t, sec in got if t == "volume_spike"]
    assert pm == [("AAA", 0), ("BBB", 0), ("AAA", 60), ("BBB", 60)]
    assert vs == [(s, t) for t in (0, 30, 59) for s in ("AAA", "BBB")]  # its own 10 s cooldown


def test_rules_can_be_switched_off():
    cfg = SignalsConfig.from_mapping({"rules": {r: {"enabled": False} for r in
                                                ("price_movement", "volume_spike", "rsi", "macd", "breakout")}})
    assert SignalEngine(cfg).on_features(fv(return_1=1.0, volatility_21=0.01, volume_ratio_21=99), 0) == []
    with pytest.raises(msgspec.ValidationError):
        SignalsConfig.from_mapping({"rules": {"rsi": {"enabeld": False}}})


def _vectors(n=400, symbols=("AAA", "BBB", "CCC"), seed=3):
    """Random but plausible feature vectors; enough movement to fire every rule."""
    rng = np.random.default_rng(seed)
    out = []
    for sym in symbols:
        price, rsi, macd, sig = 100.0, 50.0, 0.0, 0.0
        for i in range(1, n + 1):
            r = rng.normal(0, 0.01) * (4 if rng.random() < 0.05 else 1)
            price *= 1 + r
            rsi = float(np.clip(rsi + rng.normal(0, 8), 1, 99))
            macd += rng.normal(0, 0.1)
            sig += 0.3 * (macd - sig)
            values = {"return_1": r, "volatility_21": 0.01 if i > 21 else None,
                      "volume_ratio_21": float(rng.lognormal(0, 0.6)), "rsi_14": rsi, "macd": macd,
                      "macd_signal": sig, "resistance_20": price * (1 + abs(rng.normal(0, 0.01))),
                      "support_20": price * (1 - abs(rng.normal(0, 0.01))), "zscore_21": float(rng.normal(0, 1.5)),
                      "mid": price}
            out.append(fv(sym, seq=i, ts=T0 + i * 30 * SEC, price=price, **values))
    out.sort(key=lambda v: (v.ts_event, v.symbol))
    return out


def test_snapshot_restore_mid_stream_continues_exactly():
    vecs = _vectors(200)
    full = [comparable(s) for s in SignalsProcessor().engine(0).run(vecs)]
    first = SignalEngine()
    part = first.run(vecs[:250])
    second = SignalEngine()
    second.restore(first.snapshot())
    part += second.run(vecs[250:])
    assert [comparable(s) for s in part] == full
    assert len({s["signal_id"] for s in full}) == len(full) > 20


def test_plugins_from_config_class_and_function(tmp_path):
    cfg_file = tmp_path / "signals.toml"
    cfg_file.write_text("""
cooldown_s = 0
[rules.price_movement]
enabled = false
[[plugins]]
path = "examples.strategies.mean_reversion:MeanReversion"
params = { window = 21, threshold = 2.0 }
[[plugins]]
path = "examples.strategies.mean_reversion:trend_agreement"
cooldown_s = 3600
""")
    proc = create_processor(str(cfg_file))
    assert [p.name for p in proc.plugins] == ["mean_reversion", "trend_agreement"]
    eng = proc.engine(0)
    zs = [-1.0, -2.5, -1.5, 0.0, 2.4, 1.0]
    out = [eng.on_features(fv(seq=i + 1, zscore_21=z), 0) for i, z in enumerate(zs)]
    assert [(i, s.type, s.action) for i, ss in enumerate(out) for s in ss] == \
        [(2, "mean_reversion", "buy"), (5, "mean_reversion", "sell")]
    trend = dict(return_5=0.01, return_21=0.02, macd=1.0, macd_signal=0.5)
    got = [eng.on_features(fv(seq=10 + i, **trend), 0) for i in range(3)]
    assert [len(g) for g in got] == [1, 0, 0] and got[0][0].action == "consider_trade"


def test_a_failing_plugin_does_not_stop_built_in_rules():
    def boom(fv):
        raise RuntimeError("bug in user code")

    def two(fv, state):
        state["n"] = state.get("n", 0) + 1
        return [SignalHit(action="review", urgency="low", strength=1, reason="a", type="x"),
                {"action": "buy", "urgency": "high", "strength": 2, "reason": "b", "type": "y"}]

    eng = SignalEngine(only("volume_spike"), plugins=[make_plugin(boom), make_plugin(two, cooldown_s=0)])
    eng.on_features(fv(seq=1, volume_ratio_21=1), 0)  # the ratio's first valid value: no signal
    out = eng.on_features(fv(seq=2, volume_ratio_21=10), 0)
    assert [s.type for s in out if s.type == "volume_spike"] == ["volume_spike"]
    assert [s.type for s in out] == ["volume_spike", "x", "y"]
    assert eng.state["AAA"]["plugins"]["two"] == {"n": 2}


def test_to_ns_and_both_input_formats(tmp_path):
    assert to_ns(1_700_000_000) == to_ns(1_700_000_000_000) == to_ns("2023-11-14T22:13:20Z") == T0
    assert to_ns(T0) == T0 and to_ns(1_700_000_000.5) == T0 + SEC // 2
    vecs = _vectors(60, symbols=("AAA",))
    flat = [json.dumps({"symbol": v.symbol, "ts": v.ts_event, "price": v.price, **v.values}) for v in vecs]
    parsed = list(parse_lines(flat))
    assert [(p.seq, p.ts_event, p.values) for p in parsed] == [(v.seq, v.ts_event, v.values) for v in vecs]
    as_fv = list(parse_lines([encode(v) for v in vecs]))
    assert as_fv == vecs


async def test_offline_cli_equals_live_consumer_on_the_memory_bus(tmp_path, capsys):
    vecs = _vectors(300)
    path = tmp_path / "features.jsonl"
    path.write_text("\n".join(json.dumps({"symbol": v.symbol, "ts": v.ts_event, "seq": v.seq, "price": v.price,
                                          **v.values}) for v in vecs) + "\n")
    bus = MemoryBus()
    for v in vecs:
        await bus.publish("features.v1", v.symbol.encode(), encode(v))
    runner = Runner(create_processor(None), bus, RunnerSettings(poll_timeout_ms=10, max_records=97))
    task = asyncio.create_task(runner.run())
    for _ in range(200):
        await asyncio.sleep(0.02)
        if sum(len(p) for p in bus._partitions("features.v1")) and \
                all(runner.partitions[tp.partition].inputs[tp.topic].next == bus.end_offset(tp)
                    for tp in runner.subscription.assignment() if tp.partition in runner.partitions):
            break
    runner.stop.set()
    await asyncio.wait_for(task, 5)
    live = [msgspec.json.decode(r.value, type=Signal) for r in await bus.read_all("signals.v1")]

    from ticktide.cli import main
    assert main(["signals", "--input", str(path)]) == 0
    printed = [msgspec.json.decode(line, type=Signal) for line in capsys.readouterr().out.splitlines()]
    offline = signals_for_file(str(path))

    key = lambda s: s["signal_id"]  # noqa: E731
    assert sorted(map(comparable, live), key=key) == sorted(map(comparable, offline), key=key) \
        == sorted(map(comparable, printed), key=key)
    assert len(live) > 50 and {s.type for s in live} == {"price_movement", "volume_spike", "rsi", "macd", "breakout"}
    # a symbol's signals keep their order on the bus
    for sym in ("AAA", "BBB", "CCC"):
        assert [s.signal_id for s in live if s.symbol == sym] == [s.signal_id for s in offline if s.symbol == sym]


def test_offline_run_is_batch_size_independent():
    vecs = _vectors(100)
    a = [comparable(s) for s in run_offline(vecs, SignalsProcessor(), batch_size=7)]
    b = [comparable(s) for s in run_offline(vecs, SignalsProcessor(), batch_size=10_000)]
    assert a == b
