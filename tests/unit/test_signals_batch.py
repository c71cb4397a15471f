"""The signals consumer's columnar path (consumers.signals.batch) equals the per-row reference
(SignalEngine.on_features through SignalsProcessor.process): the same encoded signals, keys,
rejections and engine snapshots, whatever the batch split, with the paths alternating and
across snapshot/restore; on generated streams full of edge cases and on real market data."""

from __future__ import annotations

import itertools
import math

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consumers.signals.config import SignalsConfig
from consumers.signals.plugins import SignalHit, make_plugin
from consumers.signals.processor import SignalsProcessor
from schemas.events import FeatureVector
from schemas.topics import FEATURES, SIGNALS
from streaming.batch import Columns, decode_columns
from streaming.bus.base import Record
from streaming.bus.memory import partition_for
from streaming.codec import encode, key_for
from streaming.processor import Envelope
from tests.real_features import btcusdt_vectors, daily_vectors

T0 = 1_700_000_000 * 10**9
S = 10**9
INF = math.inf
NAN = math.nan


class NotAVector(msgspec.Struct):
    symbol: str


# -- driving both paths ----------------------------------------------------------------
def processor(config: SignalsConfig, plugins=()) -> SignalsProcessor:
    proc = SignalsProcessor(config, clock=itertools.count(1).__next__)  # one tick per batch, both paths
    proc.plugins = list(plugins)  # before any engine exists: every engine gets them
    return proc


def per_row(proc: SignalsProcessor, rows: list[tuple[int, int, object]]):
    """The reference: Envelopes through process(), encoded as the runner encodes them."""
    envs = [Envelope(FEATURES.name, p, off, None, ev) for p, off, ev in rows]
    res = proc.process(envs)
    index = {id(env): i for i, env in enumerate(envs)}
    return ([key_for(SIGNALS.name, o.event) for o in res.outputs], [encode(o.event) for o in res.outputs],
            [(index[id(env)], reason) for env, reason in res.rejected])


def columnar(proc: SignalsProcessor, rows: list[tuple[int, int, object]]):
    cols = Columns.from_records([Record(FEATURES.name, p, off, None, b"") for p, off, _ in rows])
    cols.events = [ev for _, _, ev in rows]
    res = proc.process_columns(cols)
    keys = [k for out in res.outputs for k in out.keys]
    values = [v for out in res.outputs for v in out.values]
    assert all(out.topic == SIGNALS.name for out in res.outputs)
    return keys, values, res.rejected


def snapshots(proc: SignalsProcessor) -> dict[int, bytes]:
    return {p: proc.snapshot(p) for p in sorted(proc.engines)}


def restored(proc: SignalsProcessor, config: SignalsConfig, plugins) -> SignalsProcessor:
    fresh = processor(config, plugins)
    fresh.clock = proc.clock
    for p, data in snapshots(proc).items():
        fresh.restore(p, data)
    return fresh


def assert_same(got, want, where: str) -> None:
    if got != want:  # decoded (NaN strengths are null in JSON, so not into Signal) for a readable diff
        decode = msgspec.json.decode
        assert ([k for k in got[0]], [decode(v) for v in got[1]], got[2]) == \
            ([k for k in want[0]], [decode(v) for v in want[1]], want[2]), where
        raise AssertionError(where)


def check_parity(rows, config, plugins, cuts, paths, restore_at=frozenset()):
    """Feed ``rows`` in batches (cut at ``cuts``) to a reference (always per row) and a subject
    (columnar or per row as ``paths`` says; both restored from snapshots after the batches in
    ``restore_at``): outputs and snapshots equal after every batch."""
    ref, sub = processor(config, plugins), processor(config, plugins)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(rows))), len(rows)]
    total = 0
    for b, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        batch = rows[lo:hi]
        want = per_row(ref, batch)
        got = (columnar if paths[b % len(paths)] else per_row)(sub, batch)
        assert_same(got, want, f"batch {b} rows {lo}:{hi}")
        assert snapshots(sub) == snapshots(ref), f"state after batch {b}"
        total += len(want[1])
        if b in restore_at:
            ref, sub = restored(ref, config, plugins), restored(sub, config, plugins)
    return total


def partitioned(vectors: list, partitions: int = 3) -> list[tuple[int, int, object]]:
    """(partition, offset, event) in input order, each symbol on the partition of its key."""
    offsets: dict[int, int] = {}
    out = []
    for v in vectors:
        p = partition_for(v.symbol.encode(), partitions, 0)
        offsets[p] = offsets.get(p, -1) + 1
        out.append((p, offsets[p], v))
    return out


# -- generated streams ----------------------------------------------------------------
RULES = ("price_movement", "volume_spike", "rsi", "macd", "breakout")
COOLDOWNS = st.sampled_from([None, 0.0, 2.0, 30.0])


@st.composite
def configs(draw) -> SignalsConfig:
    oversold, overbought = draw(st.sampled_from([(30.0, 70.0), (25.0, 75.0), (29.5, 50.0)]))
    rules = {
        "price_movement": {"k": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))},
        "volume_spike": {"m": draw(st.sampled_from([1.0, 2.0, 3.0]))},
        "rsi": {"oversold": oversold, "overbought": overbought},
        "macd": {},
        "breakout": {"windows": draw(st.sampled_from([[20], [50], [20, 50], [50, 20, 20]]))},
    }
    for name, rule in rules.items():
        rule["enabled"] = draw(st.booleans())
        cooldown = draw(COOLDOWNS)
        if cooldown is not None:
            rule["cooldown_s"] = cooldown
    return SignalsConfig.from_mapping({"cooldown_s": draw(st.sampled_from([0.0, 1.0, 60.0])), "rules": rules})


MISSING = [None, NAN, INF, -INF]
GRID = {  # values on and around the levels, so equalities and crossings right at them are common
    "return_1": [0.0, 0.005, -0.01, 0.01, 0.02, -0.02, 0.03, 1e308],
    "volatility_21": [0.01, 0.005, 0.0, -0.01, 0.02],
    "volume_ratio_21": [0.5, 1.0, 2.0, 3.0, 3.5],
    "rsi_14": [20.0, 25.0, 29.5, 30.0, 31.0, 50.0, 69.0, 70.0, 71.0, 75.0, 80.0],
    "macd": [-1.0, 0.0, 0.5, 1.0, 1e308],
    "macd_signal": [-1.0, 0.0, 0.5, 1.0, -1e308],
    "resistance_20": [99.0, 100.0, 101.0, 102.0],
    "support_20": [98.0, 99.0, 100.0, 101.0],
    "resistance_50": [100.0, 101.0, 103.0],
    "support_50": [97.0, 99.0, 100.0],
    "mid": [100.0, 101.0],
}
PRICES = [None, NAN, INF, 0.0, 98.0, 99.0, 100.0, 101.0, 102.0, 103.0]
STEPS = [0, S // 2, S, 5 * S, 30 * S, -(S // 2), -S, -(S + 1), -3 * S, -100 * S]  # < -1 s: a rewind


def feature_value(name: str):
    return st.one_of(st.sampled_from(GRID[name]), st.sampled_from(MISSING))


@st.composite
def streams(draw) -> list[FeatureVector]:
    symbols = draw(st.lists(st.sampled_from(["AAA", "BBB", "CCC", "DDD"]), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 60))
    warmup = {s: draw(st.integers(0, 6)) for s in symbols}  # leading rows without values
    clock = {s: T0 for s in symbols}
    seq = {s: 0 for s in symbols}
    out: list = []
    for _ in range(n):
        sym = draw(st.sampled_from(symbols))
        if draw(st.integers(0, 40)) == 0:
            out.append(NotAVector(sym))
            continue
        seq[sym] += 1
        clock[sym] += draw(st.sampled_from(STEPS))
        if seq[sym] <= warmup[sym]:
            values = {name: None for name in GRID}
        else:
            names = GRID if draw(st.integers(0, 9)) else draw(st.sets(st.sampled_from(sorted(GRID))))
            values = {name: draw(feature_value(name)) for name in names}
        out.append(FeatureVector(symbol=sym, ts_event=clock[sym], ts_ingest=draw(st.sampled_from([0, T0])),
                                 ts_proc=0, seq=seq[sym], source="tick", price=draw(st.sampled_from(PRICES)),
                                 values=values))
    return out


def strategy(fv: FeatureVector, state: dict):
    """A plug-in with state, a type shared with a rule's cooldown (rsi), several hits and failures."""
    state["n"] = state.get("n", 0) + 1
    if fv.seq % 7 == 3:
        raise RuntimeError("a bug in a user strategy")
    hits = []
    if state["n"] % 3 == 0:
        hits.append(SignalHit("review", "low", 1.0, f"every third ({state['n']})"))
    if fv.values.get("rsi_14") == 30.0:
        hits += [SignalHit("buy", "high", 2.0, "shares the rsi cooldown", type="rsi")] * 2
    return hits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vectors=streams(), config=configs(), cuts=st.lists(st.integers(0, 60), max_size=6),
       paths=st.lists(st.booleans(), min_size=1, max_size=4), restore_at=st.sets(st.integers(0, 6), max_size=2),
       partitions=st.sampled_from([1, 3]), with_plugins=st.integers(0, 4))
def test_columnar_equals_per_row_on_generated_streams(vectors, config, cuts, paths, restore_at, partitions,
                                                      with_plugins):
    plugins = [make_plugin(strategy, cooldown_s=5.0)] if with_plugins == 0 else []
    total = check_parity(partitioned(vectors, partitions), config, plugins, cuts, paths, restore_at)
    event("with signals" if total else "without signals")


def test_every_rule_fires_and_is_suppressed_in_one_columnar_batch():
    """A stream where each rule fires, cools down and rewinds inside one batch (not only across)."""
    config = SignalsConfig.from_mapping({"cooldown_s": 10.0, "rules": {"breakout": {"windows": [20]}}})
    vectors = []
    for i in range(40):
        up = i % 4 < 2
        vectors.append(FeatureVector(
            symbol="AAA", ts_event=T0 + (i if i < 30 else i - 25) * S, ts_ingest=T0, ts_proc=0, seq=i + 1,
            source="tick", price=103.0 if up else 97.0,
            values={"return_1": 0.05 if up else -0.05, "volatility_21": 0.01, "volume_ratio_21": 5.0,
                    "rsi_14": 75.0 if up else 25.0, "macd": 1.0 if up else -1.0, "macd_signal": 0.0,
                    "resistance_20": 101.0, "support_20": 99.0}))
    total = check_parity(partitioned(vectors), config, [], cuts=[], paths=[True])
    assert total > 10


# -- real data ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_vectors() -> dict[str, list[FeatureVector]]:
    return {"btcusdt": btcusdt_vectors(4000), "daily": daily_vectors(days=400)}


@pytest.mark.parametrize("source", ["btcusdt", "daily"])
@pytest.mark.parametrize("cooldown_s", [0.0, 300.0])
def test_columnar_equals_per_row_on_real_data(real_vectors, source, cooldown_s):
    config = SignalsConfig.from_mapping({"cooldown_s": cooldown_s})
    vectors = real_vectors[source]
    rows = partitioned(vectors, 6)
    cuts = list(range(0, len(rows), 997))
    total = check_parity(rows, config, [], cuts, paths=[True, True, False], restore_at={2})
    assert total > (20 if cooldown_s == 0 else 2)


def test_real_data_from_json_bytes_decoded_in_one_pass(real_vectors):
    """What the runner does: the batch's bytes decoded by decode_columns, then process_columns."""
    vectors = real_vectors["daily"]
    records = [Record(FEATURES.name, p, off, None, encode(v)) for p, off, v in partitioned(vectors, 6)]
    ref, sub = processor(SignalsConfig()), processor(SignalsConfig())
    for lo in range(0, len(records), 1000):
        cols = Columns.from_records(records[lo:lo + 1000])
        assert decode_columns(cols) == {}
        want = per_row(ref, [(p, off, ev) for (p, off, _), ev in
                             zip(((r.partition, r.offset, None) for r in cols.records()), cols.events)])
        got = sub.process_columns(cols)
        assert [v for out in got.outputs for v in out.values] == want[1]
        assert [k for out in got.outputs for k in out.keys] == want[0]
    assert snapshots(sub) == snapshots(ref)
