from pathlib import Path

import pytest

from producers.recordings.readers import read_frames
from producers.feed.sequencing import (Backoff, SeqStatus, SequenceTracker, policies_for, seq_fields_for,
                                  tracked_number)
from producers.venues import get_adapter

DATA = Path(__file__).resolve().parents[1] / "data"


def test_contiguous_trades_gap_and_duplicates():
    tr = SequenceTracker({"trade": "contiguous", "quote": "monotonic"})
    assert tr.observe("BTCUSDT", "trade", 10).status is SeqStatus.FIRST
    assert tr.observe("BTCUSDT", "trade", 11).status is SeqStatus.OK
    r = tr.observe("BTCUSDT", "trade", 15)
    assert r.status is SeqStatus.GAP and r.expected == 12 and r.missing == 3 and r.accept
    # replayed after a reconnect: dropped, state unchanged
    for seq in (13, 14, 15):
        r = tr.observe("BTCUSDT", "trade", seq)
        assert r.status is SeqStatus.DUPLICATE and not r.accept
    assert tr.observe("BTCUSDT", "trade", 16).status is SeqStatus.OK
    assert (tr.gaps, tr.missing, tr.duplicates) == (1, 3, 3)
    assert tr.last("BTCUSDT", "trade") == 16


def test_tracked_per_symbol_and_kind():
    tr = SequenceTracker({"trade": "contiguous", "quote": "monotonic"})
    tr.observe("BTCUSDT", "trade", 100)
    # another symbol / kind starts its own sequence
    assert tr.observe("ETHUSDT", "trade", 5).status is SeqStatus.FIRST
    assert tr.observe("BTCUSDT", "quote", 7).status is SeqStatus.FIRST
    # quotes are monotonic with holes by design (Binance bookTicker u): no gap
    assert tr.observe("BTCUSDT", "quote", 20).status is SeqStatus.OK
    assert tr.observe("BTCUSDT", "quote", 20).status is SeqStatus.DUPLICATE
    assert tr.observe("BTCUSDT", "trade", 101).status is SeqStatus.OK
    assert tr.gaps == 0
    assert tr.snapshot() == {"BTCUSDT/trade": 101, "ETHUSDT/trade": 5, "BTCUSDT/quote": 20}


def test_untracked_without_seq_or_with_policy_none():
    tr = SequenceTracker({"trade": "none"})
    assert tr.observe("X", "trade", 1).status is SeqStatus.UNTRACKED
    assert tr.observe("X", "trade", 1).status is SeqStatus.UNTRACKED
    assert tr.observe("X", "quote", None).status is SeqStatus.UNTRACKED


def test_reset_below_treats_big_backwards_jump_as_restart():
    tr = SequenceTracker({"trade": "contiguous"}, reset_below=1000)
    tr.observe("X", "trade", 50_000)
    assert tr.observe("X", "trade", 49_990).status is SeqStatus.DUPLICATE
    assert tr.observe("X", "trade", 3).status is SeqStatus.FIRST
    assert tr.observe("X", "trade", 4).status is SeqStatus.OK
    assert tr.resets == 1


def test_venue_policies():
    assert policies_for("binance") == {"trade": "contiguous", "quote": "monotonic"}
    assert policies_for("binance-sim")["trade"] == "contiguous"
    assert policies_for("kraken") == {"trade": "contiguous", "quote": "none"}
    assert policies_for("unknown")["trade"] == "monotonic"


def test_backoff_exponential_bounded_with_jitter():
    b = Backoff(initial=1.0, maximum=10.0, factor=2.0, jitter=0.0)
    assert b.schedule(6) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next() == 1.0
    j = Backoff(initial=1.0, maximum=10.0, factor=2.0, jitter=0.5, seed=7)
    delays = j.schedule(20)
    for n, d in enumerate(delays):
        base = min(10.0, 2.0 ** n)
        assert 0.5 * base <= d <= min(10.0, 1.5 * base)
    assert len(set(delays)) > 10  # jittered


def test_backoff_deterministic_with_seed_and_max_attempts():
    a = Backoff(0.1, 5.0, 2.0, 0.3, seed=42).schedule(30)
    b = Backoff(0.1, 5.0, 2.0, 0.3, seed=42).schedule(30)
    assert a == b
    assert a != Backoff(0.1, 5.0, 2.0, 0.3, seed=43).schedule(30)
    limited = Backoff(0.1, 1.0, max_attempts=3, seed=1)
    assert [d is None for d in limited.schedule(5)] == [False, False, False, True, True]
    limited.reset()
    assert limited.next() is not None
    assert Backoff(1.0, 60.0).base(10_000) == 60.0  # no overflow


def test_backoff_rejects_bad_config():
    with pytest.raises(ValueError):
        Backoff(jitter=2.0)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)


@pytest.mark.parametrize("venue, name", [
    ("coinbase", "COINBASE.ws.28.0"),
    ("binance", "BINANCE.ws.1.0"),
    ("binance", "spot_btcusdt_20240808.ndjson.gz"),
])
def test_venue_policies_raise_no_false_gaps_on_real_recordings(venue, name):
    """Why the policies are what they are, on real sessions with nothing lost.

    Coinbase's product ``sequence`` is shared with channels we do not read and
    Binance's bookTicker ``u`` with depth updates, so treating them as
    contiguous would raise a gap alarm on most frames; the venue policies
    (Coinbase trades on ``trade_id``, quotes monotonic) raise none.
    """
    adapter = get_adapter(venue)
    chosen = SequenceTracker(policies_for(venue))
    fields = seq_fields_for(venue)
    all_contiguous = SequenceTracker({"trade": "contiguous", "quote": "contiguous"})
    kinds = set()
    for ts, frame in read_frames(DATA / name):
        for tick in adapter.parse(frame, ts).ticks:
            kinds.add(tick.kind)
            number = tracked_number(tick, fields.get(tick.kind, "seq"))
            assert number is not None
            assert chosen.observe(tick.symbol, tick.kind, number).accept
            all_contiguous.observe(tick.symbol, tick.kind, tick.seq)
    assert kinds == {"trade", "quote"}
    assert chosen.gaps == 0 and chosen.duplicates == 0
    assert all_contiguous.gaps > 50  # the alarms the policies avoid (194 / 54 / 18,238)


def test_kraken_v2_trade_ids_are_tracked_and_v1_trades_pass_untracked():
    adapter = get_adapter("kraken")
    tracker = SequenceTracker(policies_for("kraken"))

    def v2(trade_id: int) -> bytes:
        return ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":60000.1,'
                f'"qty":0.5,"ord_type":"market","trade_id":{trade_id},"timestamp":"2024-08-08T00:00:00.000001Z"}}]}}'
                ).encode()

    statuses = []
    for trade_id in (100, 101, 103, 101):  # a lost trade, then one replayed after a reconnect
        (tick,) = adapter.parse(v2(trade_id), 1).ticks
        statuses.append(tracker.observe(tick.symbol, tick.kind, tracked_number(tick)))
    assert [r.status for r in statuses] == [SeqStatus.FIRST, SeqStatus.OK, SeqStatus.GAP, SeqStatus.DUPLICATE]
    assert statuses[2].missing == 1
    v1 = b'[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]'
    (tick,) = adapter.parse(v1, 1).ticks
    assert tracker.observe(tick.symbol, tick.kind, tracked_number(tick)).status is SeqStatus.UNTRACKED
