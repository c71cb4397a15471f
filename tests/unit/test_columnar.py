"""The columnar batch path: one-pass decode, bulk FeatureVector encoding, the runner on columns."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import msgspec
import pytest

from consumers.features.processor import FeaturesProcessor
from schemas.events import Bar, DeadLetter, FeatureVector, Tick
from streaming.batch import Columns, decode_columns, decode_values
from streaming.bus.base import Record
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.processor import Envelope
from streaming.runner import Runner, RunnerSettings
from tests.helpers import drain

DATA = Path(__file__).resolve().parents[1] / "data"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


def _trades(n: int) -> list[Tick]:
    out = []
    with gzip.open(DATA / "spot_btcusdt_20240808.ndjson.gz", "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame:
                d = json.loads(frame)["data"]
                i = len(out)
                sym = SYMBOLS[i % len(SYMBOLS)]
                out.append(Tick(symbol=sym, venue="BINANCE", kind="trade", ts_event=int(ns), ts_recv=int(ns) + 7,
                                price=float(d["p"]) * (1 + 0.1 * (i % 4)), size=float(d["q"]), side="buy"))
                if len(out) == n:
                    break
    return out


def _columns(events: list, topic: str = "ticks.v1") -> Columns:
    """Events as a fetched batch, each symbol on its own partition, in order per partition."""
    by_part: dict[int, list[Record]] = {}
    for e in events:
        p = SYMBOLS.index(e.symbol) if e.symbol in SYMBOLS else 0
        recs = by_part.setdefault(p, [])
        recs.append(Record(topic, p, len(recs), e.symbol.encode(), encode(e)))
    return Columns.from_records([r for p in sorted(by_part) for r in by_part[p]])


def _per_message(cols: Columns) -> tuple[list[bytes], list[bytes], list[int]]:
    """Today's path: Envelopes, process(), one FeatureVector Struct encoded per message."""
    proc = FeaturesProcessor(clock=lambda: 42)
    envs = [Envelope(r.topic, r.partition, r.offset, r.key, e) for r, e in zip(cols.records(), cols.events)]
    res = proc.process(envs)
    rejected = [envs.index(env) for env, _ in res.rejected]
    return [o.key for o in res.outputs], [encode(o.event) for o in res.outputs], rejected


def test_bulk_encoding_is_byte_for_byte_the_per_message_encoding():
    trades = _trades(3000)
    trades[5].price = -1.0  # rejected by both paths
    trades[9].size = -0.5
    trades[11].price = None
    cols = _columns(trades)
    assert decode_columns(cols) == {}
    proc = FeaturesProcessor(clock=lambda: 42)
    result = proc.process_columns(cols)
    keys, values, rejected = _per_message(cols)
    (out,) = result.outputs
    assert out.topic == "features.v1" and len(out.values) == len(trades) - 3
    assert out.values == values  # the same bytes, in the same order
    assert out.keys == keys
    assert sorted(i for i, _ in result.rejected) == sorted(rejected)
    # every reader decodes them with the FeatureVector Struct to what the per-message encoder wrote
    dec = msgspec.json.Decoder(FeatureVector)
    vectors = [dec.decode(v) for v in out.values]
    assert vectors == [dec.decode(v) for v in values]
    assert any(v is None for v in vectors[0].values.values()), "warm-up nulls are encoded as null"


def test_columns_across_batches_continue_the_sequence_and_state():
    trades = _trades(2000)
    whole = _columns(trades)
    decode_columns(whole)
    a, b = _columns(trades[:777]), _columns(trades[777:])
    b.offsets = [o + 10_000 for o in b.offsets]
    proc = FeaturesProcessor(clock=lambda: 42)
    values = []
    for cols in (a, b):
        decode_columns(cols)
        values += proc.process_columns(cols).outputs[0].values
    one = FeaturesProcessor(clock=lambda: 42).process_columns(whole).outputs[0].values
    dec = msgspec.json.Decoder(FeatureVector)
    key = lambda v: (v.symbol, v.seq)  # noqa: E731 - partition order differs between the two splits
    assert sorted(map(dec.decode, values), key=key) == sorted(map(dec.decode, one), key=key)


def test_mixed_batches_with_bars_and_quotes_match_the_envelope_path():
    trades = _trades(200)
    quote = Tick(symbol="BTCUSDT", venue="BINANCE", kind="quote", ts_event=1, ts_recv=2, bid=100.0, ask=100.5)
    bar = Bar(symbol="AAPL", ts_event=5, open=1.0, high=2.0, low=0.5, close=1.5, volume=10.0)
    cols = _columns(trades[:50] + [quote] + trades[50:])
    bars = _columns([bar], "bars.v1")
    mixed = Columns.from_records(cols.records() + bars.records())
    decode_columns(mixed)
    result = FeaturesProcessor(clock=lambda: 42, emit_quotes=True).process_columns(mixed)
    proc = FeaturesProcessor(clock=lambda: 42, emit_quotes=True)
    envs = [Envelope(r.topic, r.partition, r.offset, r.key, e) for r, e in zip(mixed.records(), mixed.events)]
    expected = [encode(o.event) for o in proc.process(envs).outputs]
    assert [v for o in result.outputs for v in o.values] == expected


def test_one_pass_decode_isolates_a_poison_message():
    good = [encode(t) for t in _trades(5)]
    values = good[:2] + [b'{"symbol": 1}', b"not json", b"{},{}"] + good[2:]
    events, errors = decode_values("ticks.v1", values)
    assert sorted(errors) == [2, 3, 4]
    assert [e for i, e in enumerate(events) if i not in errors] == [msgspec.json.decode(v, type=Tick) for v in good]
    events, errors = decode_values("ticks.v1", good)
    assert errors == {} and len(events) == 5


@pytest.mark.parametrize("max_records", [7, 1000])
async def test_runner_columnar_path_publishes_features_and_dead_letters_garbage(max_records):
    bus = MemoryBus()
    trades = _trades(300)
    for i, t in enumerate(trades):
        await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
        if i == 100:
            await bus.publish("ticks.v1", b"BTCUSDT", b"{garbage")
    runner = Runner(FeaturesProcessor(), bus, RunnerSettings(poll_timeout_ms=10, max_records=max_records))
    await drain(runner, max_records)
    features = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    assert len(features) == 300
    assert {(f.symbol, f.seq) for f in features} == {(s, k) for s in SYMBOLS for k in range(1, 76)}
    (letter,) = [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1")]
    assert letter.raw == b"{garbage" and letter.stage == "features:decode" and letter.key == "BTCUSDT"


async def test_a_new_group_starts_from_empty_state_with_its_own_changelog():
    bus = MemoryBus()
    for t in _trades(200):
        await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
    await drain(Runner(FeaturesProcessor(), bus, RunnerSettings(group="alpha")))
    assert await bus.read_all("changelog.alpha.features.v2"), "alpha snapshots its state"
    await drain(Runner(FeaturesProcessor(), bus, RunnerSettings(group="beta")))
    assert await bus.read_all("changelog.beta.features.v2")
    features = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    # beta did not restore alpha's state: it computed every tick again from seq 1, the same values
    assert len(features) == 400
    by_key: dict[tuple[str, int], list] = {}
    for f in features:
        by_key.setdefault((f.symbol, f.seq), []).append(f.values)
    assert all(len(v) == 2 and v[0] == v[1] for v in by_key.values())


async def test_a_commit_lost_to_a_rebalance_is_logged_and_the_consumer_goes_on(caplog):
    """The member's session expired between two batches (the memory bus's real rebalance): the
    commit fails, the member rejoins, gets its partitions back restored, and nothing is counted twice."""
    bus = MemoryBus()
    for t in _trades(100):
        await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
    runner = Runner(FeaturesProcessor(), bus, RunnerSettings(group="g"))
    await runner.open()
    handled = 0
    async for records in runner.subscription.batches(30, 10):
        if not records:
            break
        await runner.handle(records)
        handled += 1
        if handled == 1:
            bus.expire(runner.subscription)
            await runner.checkpoint.commit(wait=True)  # refused: logged, the consumer goes on
    await runner.close()
    assert "offsets not committed, the group rebalanced" in caplog.text
    features = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    assert sorted((f.symbol, f.seq) for f in features) == sorted({(f.symbol, f.seq) for f in features}), \
        "no input counted twice"
    assert len({(f.symbol, f.seq) for f in features}) == 100  # every input processed
    assert sum(c.offset for c in bus._groups["g"].committed.values()) == 100  # later commits cover the lost one


def test_gateway_decodes_a_batch_in_one_pass_and_counts_the_undecodable():
    from ticktide.gateway import metrics as gm
    from ticktide.gateway.hub import Hub

    trades = _trades(6)
    batch = [Record("ticks.v1", 0, i, t.symbol.encode(), encode(t)) for i, t in enumerate(trades[:3])]
    batch += [Record("ticks.v1", 0, 3, b"X", b"{broken"), Record("orders.v1", 0, 0, None, b"{}")]
    batch += [Record("ticks.v1", 0, 4 + i, t.symbol.encode(), encode(t)) for i, t in enumerate(trades[3:])]
    errors_before = gm.DECODE_ERRORS.labels("ticks")._value.get()
    in_before = gm.EVENTS_IN.labels("ticks")._value.get()
    pairs = Hub().decode_batch(batch)
    assert pairs == [("ticks", t) for t in trades]  # the broken one skipped, the unrelated topic ignored
    assert gm.DECODE_ERRORS.labels("ticks")._value.get() == errors_before + 1
    assert gm.EVENTS_IN.labels("ticks")._value.get() == in_before + 7


async def test_the_kernels_are_ready_before_the_group_is_joined():
    order = []

    class Watching(FeaturesProcessor):
        def warm_up(self):
            order.append("warm_up")
            super().warm_up()

    bus = MemoryBus()
    subscribe = bus.subscribe

    def joining(*args, **kwargs):
        order.append("subscribe")
        return subscribe(*args, **kwargs)

    bus.subscribe = joining
    runner = Runner(Watching(), bus, RunnerSettings())
    await runner.open()
    await runner.close()
    assert order == ["warm_up", "subscribe"]


@pytest.mark.parametrize("argv, max_records, poll_ms, linger_ms", [
    ([], 5000, 100, 5),
    (["--profile", "latency"], 500, 20, 0),
    (["--profile", "latency", "--max-records", "50"], 50, 20, 0),
])
def test_profiles_choose_the_batch_and_kafka_settings(monkeypatch, argv, max_records, poll_ms, linger_ms):
    import streaming.bus.kafka
    from streaming import runner as runner_module
    from ticktide.cli import main

    seen = {}

    async def fake_run(self):
        seen.update(settings=self.settings, linger=self.bus.settings.linger_ms,
                    fetch=self.bus.settings.fetch_max_wait_ms)

    async def no_close(self):
        return None

    async def reachable(url, timeout_s=0):
        return None

    import streaming.commandline
    import ticktide.commands

    monkeypatch.setattr(runner_module.Runner, "run", fake_run)
    monkeypatch.setattr(streaming.bus.kafka.KafkaBus, "close", no_close)
    monkeypatch.setattr(streaming.bus.kafka.KafkaBus, "start", no_close)  # no broker here: settings only
    monkeypatch.setattr(streaming.commandline, "ensure_reachable", reachable)
    monkeypatch.setattr(ticktide.commands, "ensure_reachable", reachable)
    assert main(["consume", "features", "--bus", "kafka://127.0.0.1:1", *argv]) == 0
    assert seen["settings"].max_records == max_records and seen["settings"].poll_timeout_ms == poll_ms
    assert seen["linger"] == linger_ms and seen["fetch"] in (100, 5)
