"""Declarative validation: rules, actions, state, quality thresholds, and the
generated fast path agreeing with the rule loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.recordings import read_frames
from producers.validation import DEFAULT_RULES, RuleError, Validator
from producers.venues import get_adapter
from schemas.events import Tick

S = 1_000_000_000


def trade(price=100.0, size=1.0, ts=10 * S, recv=None, seq=None, symbol="BTCUSDT", side="buy"):
    return Tick(symbol=symbol, venue="test", kind="trade", ts_event=ts,
                ts_recv=ts if recv is None else recv, price=price, size=size, side=side, seq=seq)


def quote(bid=99.0, ask=101.0, ts=10 * S, recv=None, seq=None, symbol="BTCUSDT"):
    return Tick(symbol=symbol, venue="test", kind="quote", ts_event=ts,
                ts_recv=ts if recv is None else recv, bid=bid, ask=ask, bid_size=1.0, ask_size=1.0, seq=seq)


@pytest.fixture(params=[True, False], ids=["fast", "loop"])
def v(request):
    return Validator(fast=request.param)


def test_default_rules_load_and_accept_clean_ticks(v):
    r = v.validate(trade())
    assert r.accepted is not None and r.flags == [] and r.rejected_reason is None
    assert r.accepted.flags == []


@pytest.mark.parametrize("tick, rule", [
    (trade(price=0.0), "trade_price_not_positive"),
    (trade(price=-1.0), "trade_price_not_positive"),
    (trade(price=None), "trade_price_missing"),
    (trade(size=0.0), "trade_size_not_positive"),
    (trade(size=None), "trade_size_not_positive"),
    (quote(bid=-1.0), "quote_not_positive"),
])
def test_rejects(v, tick, rule):
    r = v.validate(tick)
    assert r.accepted is None and r.rejected_reason.startswith(rule + ":")
    assert v.quality()["BTCUSDT"].rejected == 1


def test_price_jump_is_flagged_against_last_accepted(v):
    v.validate(trade(100.0, ts=1 * S))
    r = v.validate(trade(111.0, ts=2 * S))
    assert r.accepted is not None and [f.rule for f in r.flags] == ["trade_price_jump"]
    assert r.accepted.flags == ["trade_price_jump"] and r.flags[0].severity == "warning"
    # the flagged tick was accepted, so it is the new reference
    assert v.validate(trade(112.0, ts=3 * S)).flags == []
    # a rejected tick never becomes the reference
    assert v.validate(trade(-5.0, ts=4 * S)).accepted is None
    assert v.validate(trade(112.5, ts=5 * S)).flags == []


def test_out_of_order_and_seq_are_per_symbol_and_kind(v):
    assert v.validate(trade(ts=5 * S, seq=10)).flags == []
    r = v.validate(trade(ts=4 * S, recv=6 * S, seq=11))
    assert [f.rule for f in r.flags] == ["out_of_order"]
    r = v.validate(trade(ts=6 * S, seq=11))  # duplicate trade id
    assert [f.rule for f in r.flags] == ["trade_seq_regression"]
    # other symbol, other kind: independent state
    assert v.validate(trade(ts=1 * S, seq=1, symbol="ETHUSDT")).flags == []
    assert v.validate(quote(ts=1 * S, seq=1)).flags == []
    assert v.validate(quote(ts=2 * S, seq=1)).flags == []  # bookTicker u may repeat
    assert [f.rule for f in v.validate(quote(ts=3 * S, seq=0)).flags] == ["quote_seq_regression"]


def test_stale_and_clock_skew(v):
    r = v.validate(trade(ts=1 * S, recv=7 * S))
    assert [(f.rule, f.severity) for f in r.flags] == [("stale", "warning")]
    r = v.validate(trade(ts=20 * S, recv=10 * S))
    assert [(f.rule, f.severity) for f in r.flags] == [("clock_skew", "info")]
    q = v.quality()["BTCUSDT"]
    assert q.flagged == 1  # info flags do not count against validity


def test_crossed_quote_flag(v):
    assert v.validate(quote(bid=100.0, ask=100.0)).flags == []  # locked is fine
    r = v.validate(quote(bid=101.0, ask=100.0, ts=11 * S))
    assert [f.rule for f in r.flags] == ["quote_crossed"]


def test_fill_missing_quote_side_from_last_good(v):
    v.validate(quote(bid=99.0, ask=101.0, ts=10 * S))
    r = v.validate(quote(bid=None, ask=101.5, ts=12 * S))
    assert r.accepted is not None and r.accepted.bid == 99.0
    assert r.accepted.flags == ["quote_bid_missing"] and "filled bid=99.0" in r.flags[0].message
    # older than max_age_s (5 s): nothing to fill from -> rejected
    r = v.validate(quote(bid=None, ask=101.5, ts=30 * S))
    assert r.accepted is None and "no recent value" in r.rejected_reason
    # never seen: rejected
    assert v.validate(quote(ask=None, symbol="NEW")).accepted is None
    q = v.quality()["BTCUSDT"]
    assert (q.filled, q.complete, q.total) == (1, 1, 3)


def test_quality_thresholds_per_symbol_and_default():
    v = Validator()
    for i in range(100):
        v.validate(trade(100.0, ts=i * S, symbol="BTCUSDT"))
        v.validate(trade(100.0, ts=i * S, symbol="ETHUSDT"))
    for i in range(100, 103):  # 3 rejected of 103: validity 0.971
        v.validate(trade(-1.0, ts=i * S, symbol="BTCUSDT"))
        v.validate(trade(-1.0, ts=i * S, symbol="ETHUSDT"))
    q = v.quality()
    btc, eth = q["BTCUSDT"], q["ETHUSDT"]
    assert btc.validity == pytest.approx(100 / 103) and btc.completeness == 1.0
    assert btc.thresholds == {"completeness": 0.999, "validity": 0.98}
    assert btc.breaches == ["validity"]  # below the BTCUSDT threshold 0.98
    assert eth.thresholds == {"completeness": 0.99, "validity": 0.95}
    assert eth.breaches == []  # above the default 0.95


def test_quality_not_judged_below_min_samples():
    v = Validator()
    v.validate(trade(-1.0))
    q = v.quality()["BTCUSDT"]
    assert q.validity == 0.0 and not q.ready and q.breaches == []


def test_completeness_breach_and_custom_rules():
    v = Validator.from_toml("""
[[rules]]
name = "price_band"
kinds = ["trade"]
symbols = ["BTCUSDT"]
conditions = [{ field = "price", operator = "between", value = [10, 1000], negate = true }]
actions = [{ type = "flag", severity = "critical" }, { type = "reject" }]

[[rules]]
name = "const_size"
kinds = ["trade"]
conditions = [{ field = "size", operator = "is_null" }]
actions = [{ type = "fill", field = "size", method = "value", value = 1.0, severity = "info" }]

[quality]
min_samples = 4
required_fields = { trade = ["price", "size"] }

[quality_thresholds.default]
completeness = 0.9
""")
    assert v.validate(trade(5.0)).rejected_reason.startswith("price_band")
    assert v.validate(trade(5.0, symbol="OTHER")).accepted is not None
    r = v.validate(trade(100.0, size=None))
    assert r.accepted.size == 1.0 and r.accepted.flags == ["const_size"]
    for _ in range(3):
        v.validate(trade(100.0))
    q = v.quality()["BTCUSDT"]
    assert q.completeness == pytest.approx(4 / 5) and q.breaches == ["completeness"]


@pytest.mark.parametrize("toml, fragment", [
    ('[[rules]]\nname="x"\nconditions=[{field="price",operator="wobbles"}]\nactions=[{type="reject"}]', "unknown operator"),
    ('[[rules]]\nname="x"\nconditions=[{field="colour",operator="is_null"}]\nactions=[{type="reject"}]', "unknown field"),
    ('[[rules]]\nname="x"\nconditions=[{field="price",operator="is_null"}]\nactions=[{type="explode"}]', "unknown action"),
    ('[[rules]]\nname="x"\nconditions=[]\nactions=[{type="reject"}]', "at least one condition"),
    ('[[rules]]\nname="x"\nconditions=[{field="price",operator="greater_than",value="big"}]\nactions=[{type="reject"}]', "must be a number"),
    ('[[rules]]\nname="x"\nconditions=[{field="price",operator="is_null"}]\nactions=[{type="flag",severity="meh"}]', "severity"),
])
def test_bad_rule_files_fail_at_load(toml, fragment):
    with pytest.raises(RuleError, match=fragment):
        Validator.from_toml(toml)


def test_default_rules_on_the_btcusdt_recording_raise_no_flags():
    data = Path(__file__).resolve().parents[1] / "data" / "spot_btcusdt_20240808.ndjson.gz"
    a, v = get_adapter("binance"), Validator.from_file(DEFAULT_RULES)
    for ts, fr in read_frames(data):
        for t in a.parse(fr, ts).ticks:
            r = v.validate(t)
            assert r.accepted is not None and r.flags == []
    q = v.quality()["BTCUSDT"]
    assert (q.total, q.completeness, q.validity, q.breaches) == (37_797, 1.0, 1.0, [])


def test_stale_symbols_and_reset():
    v = Validator()
    v.validate(trade(ts=1 * S, symbol="A"))
    v.validate(trade(ts=9 * S, symbol="B"))
    assert v.stale_symbols(now_ns=10 * S, after_s=5) == ["A"]
    v.validate(trade(ts=5 * S, symbol="B", seq=None))
    v.reset("B")
    assert v.validate(trade(ts=2 * S, recv=3 * S, symbol="B")).flags == []


# --- the generated fast path must agree with the rule loop -------------------------

maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
prices = st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6),
                   st.sampled_from([0.0, 100.0, 110.0, 89.0]))
ticks = st.builds(
    lambda kind, sym, p, s, b, a, ts, lag, seq: Tick(
        symbol=sym, venue="t", kind=kind, ts_event=ts, ts_recv=ts + lag,
        price=p if kind == "trade" else None, size=s if kind == "trade" else None,
        side="buy" if kind == "trade" else None,
        bid=b if kind == "quote" else None, ask=a if kind == "quote" else None,
        bid_size=1.0 if kind == "quote" else None, ask_size=1.0 if kind == "quote" else None, seq=seq),
    st.sampled_from(["trade", "quote"]), st.sampled_from(["A", "B"]),
    maybe(prices), maybe(prices), maybe(prices), maybe(prices),
    st.integers(0, 20).map(lambda x: x * S // 2), st.integers(-8, 8).map(lambda x: x * S),
    maybe(st.integers(0, 5)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ticks, max_size=25))
def test_fast_path_equals_rule_loop(seq_of_ticks):
    fast, loop = Validator(fast=True), Validator(fast=False)
    for t in seq_of_ticks:
        a = fast.validate(Tick(**{f: getattr(t, f) for f in t.__struct_fields__ if f != "flags"}))
        b = loop.validate(Tick(**{f: getattr(t, f) for f in t.__struct_fields__ if f != "flags"}))
        assert a == b
    assert fast.quality() == loop.quality()
    for q in fast.quality().values():
        assert 0.0 <= q.completeness <= 1.0 and 0.0 <= q.validity <= 1.0 and not math.isnan(q.validity)


# --- the batch path must agree with validate() tick by tick -------------------------

def _copy(t: Tick) -> Tick:
    return Tick(**{f: getattr(t, f) for f in t.__struct_fields__ if f != "flags"})


@settings(max_examples=150, deadline=None)
@given(st.lists(ticks, max_size=40), st.booleans())
def test_validate_many_equals_validate(seq_of_ticks, use_fast):
    one, many = Validator(), Validator(fast=use_fast)
    want_acc, want_problems = [], []
    for i, t in enumerate(seq_of_ticks):
        v = one.validate(_copy(t))
        if v.accepted is not None:
            want_acc.append(v.accepted)
        if v.accepted is None or v.flags:
            want_problems.append((i, v))
    problems: list = []
    got = many.validate_many([_copy(t) for t in seq_of_ticks], problems)
    assert got == want_acc
    assert problems == want_problems
    assert many.quality() == one.quality()


def test_validate_many_unknown_kind_and_empty():
    v = Validator()
    assert v.validate_many([]) == []
    bad = Tick(symbol="A", venue="t", kind="trade", ts_event=1, ts_recv=1, price=1.0, size=1.0, side="buy")
    bad.kind = "bar"  # type: ignore[assignment]
    problems: list = []
    assert v.validate_many([bad], problems) == []
    assert problems[0][0] == 0 and problems[0][1].rejected_reason.startswith("kind:")
    assert v.quality() == {}
