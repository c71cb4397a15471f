"""Declarative validation: rules, actions, state, quality thresholds, and the
generated fast path agreeing with the rule loop."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.recordings.readers import read_frames
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


# --- the vectorized precheck of validate_many must agree with validate() --------------

from unittest.mock import patch  # noqa: E402

import producers.validation.validator as validation_mod  # noqa: E402
from producers.validation import Verdict  # noqa: E402

# rule sets that exercise every operator the vector precheck evaluates
VECTOR_RULES = {
    "default": None,
    "compare": """
[[rules]]
name = "size_above_price"
conditions = [{ field = "size", operator = "greater_than", value_field = "price" }]
actions = [{ type = "flag", severity = "warning" }]

[[rules]]
name = "future"
conditions = [{ field = "ts_event", operator = "greater_than", value = 1.8e18 }]
actions = [{ type = "flag", severity = "info" }]
""",
    "every_operator": """
[[rules]]
name = "band"
kinds = ["trade"]
symbols = ["A"]
conditions = [{ field = "price", operator = "between", value = [1.5, 1000], negate = true }]
actions = [{ type = "flag", severity = "warning" }]

[[rules]]
name = "big"
match = "any"
conditions = [
  { field = "size", operator = "greater_than", value = 1e5, inclusive = true },
  { field = "seq", operator = "greater_than", value = 1e15 },
  { field = "ts_event", operator = "less_than", value = 1.5e9 },
  { field = "ts_event", operator = "greater_than", value = 1.8e18 },
]
actions = [{ type = "flag", severity = "info" }]

[[rules]]
name = "size_above_price"
kinds = ["trade"]
conditions = [{ field = "size", operator = "greater_than", value_field = "price" },
              { field = "seq", operator = "not_null" }]
actions = [{ type = "flag", severity = "warning" }]

[[rules]]
name = "gap"
conditions = [{ field = "ts_event", operator = "stale_for", value = 3.0, reference = "previous" }]
actions = [{ type = "flag", severity = "warning" }]

[[rules]]
name = "late"
conditions = [{ field = "latency_s", operator = "greater_than", value = 4.0 }]
actions = [{ type = "flag", severity = "info" }]

[[rules]]
name = "ts_order"
conditions = [{ field = "ts_event", operator = "out_of_order", allow_equal = false, negate = true },
              { field = "price", operator = "max_jump_pct", value = 50.0 }]
actions = [{ type = "flag", severity = "warning" }]

[[rules]]
name = "seq_jump"
kinds = ["trade"]
conditions = [{ field = "seq", operator = "max_jump_pct", value = 50.0 }]
actions = [{ type = "flag", severity = "info" }]

[[rules]]
name = "no_size"
kinds = ["trade"]
conditions = [{ field = "size", operator = "is_null" }]
actions = [{ type = "fill", field = "size", method = "last", max_age_s = 2.0 }]

[[rules]]
name = "bid_ask_missing"
kinds = ["quote"]
match = "any"
conditions = [{ field = "bid", operator = "is_null" }, { field = "ask", operator = "is_null" }]
actions = [{ type = "reject" }]

[quality]
min_samples = 3
required_fields = { trade = ["price", "side"], quote = ["bid"] }
""",
}


def _validators(name: str, **kw) -> Validator:
    text = VECTOR_RULES[name]
    return Validator(**kw) if text is None else Validator(Validator.from_toml(text).config, **kw)


def _state_of(v: Validator) -> dict:
    return {k: {s: (st.last, st.good, st.good_ts) for s, st in sts.items()}
            for k, sts in v._states.items()}


# mostly clean runs of one symbol (the case the precheck is for), with rule triggers,
# nulls, ints in float fields and values at the edges of what numpy can judge exactly
_vprices = st.one_of(
    st.sampled_from([100.0, 100.5, 101.0, 99.5, 100.25, 150.0, 50.0, 200.0]),
    st.sampled_from([100.0, 100.0, 111.0, 89.0, 0.0, -1.0, 0.5, 2e6, 1e300, -0.0, None, 100,
                     2**52, 2**53 + 1, float("inf"), float("nan"), True]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6),
)
_vticks = st.builds(
    lambda kind, sym, p, s, ts, lag, seq: Tick(
        symbol=sym, venue="t", kind=kind, ts_event=ts, ts_recv=ts + lag,
        price=p if kind == "trade" else None, size=s if kind == "trade" else None,
        side="buy" if kind == "trade" else None,
        bid=p if kind == "quote" else None, ask=s if kind == "quote" else None,
        bid_size=1.0 if kind == "quote" else None, ask_size=1.0 if kind == "quote" else None, seq=seq),
    st.sampled_from(["trade"] * 6 + ["quote"]), st.sampled_from(["A"] * 6 + ["B"]),
    _vprices, _vprices,
    st.one_of(st.integers(0, 40).map(lambda x: 1_700_000_000 * S + x * S // 2),
              st.sampled_from([0, 1, 2**61, 2**61 + 1, -(2**61) - 1, 2**63 - 1])),
    st.one_of(st.just(0), st.integers(-8, 8).map(lambda x: x * S),
              st.sampled_from([2**53, 2**53 + 1, 4 * S, 4 * S + 1])),
    st.one_of(st.integers(0, 6), st.none(), st.sampled_from([2**52, 2**52 + 3, 2**62, 2**63 - 1])),
)


_EDGES = {
    "price": [100.0, 150.0, 50.0, 200.0, 2.0**53, 0.0, -1.0, -0.0, None, 100, 2**52, 2**52 + 1, 2**53 + 1,
              1e300, float("inf"), float("nan"), True, 1.5, 1000.0, 1000.5],
    "size": [None, 0.0, -1.0, 1e5, 99999.99, 2.0, 200.0, 7, float("inf"), 2**53 + 1, 2.0**53],
    "seq": [None, 0, 3, 2**52, 2**52 + 3, 2**61, 2**61 + 1, 2**62, 2**63 - 1, -(2**61) - 1, 1.5, True],
    "ts_event": [0, 1, 1_500_000_000, 2**61, 2**61 + 1, -(2**61) - 1, 2**63 - 1, None, 1.0e18,
                 1_800_000_000_000_000_000, 1_800_000_000_000_000_001, 1_799_999_999_999_999_999],
    "lag": [0, 4 * S, 4 * S + 1, 6 * S, -6 * S, 2**53, 2**53 + 1, 2**54],
    "symbol": ["B", "A"],
    "kind": ["quote"],
}


@st.composite
def _runs(draw):
    """A clean run of one symbol's trades (the case the precheck is for) with a few
    edits at random places: rule triggers, nulls, ints in float fields, values at
    the edges of what numpy can judge exactly, another symbol or kind."""
    n = draw(st.integers(0, 90))
    steps = draw(st.lists(st.sampled_from([0.0, 0.25, -0.25, 0.5, 1.0, 5.0, 60.0]), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0, 1, S // 2, S, 3 * S, 3 * S + 1]), min_size=n, max_size=n))
    out, price, ts = [], 100.0, 1_700_000_000 * S
    for i in range(n):
        price = max(1.0, price + steps[i])
        ts += gaps[i]
        out.append(Tick(symbol="A", venue="t", kind="trade", ts_event=ts, ts_recv=ts, price=price,
                        size=1.0, side="buy", seq=i + 1))
    for _ in range(draw(st.integers(0, 4)) if n else 0):
        t = out[draw(st.integers(0, n - 1))]
        f = draw(st.sampled_from(sorted(_EDGES)))
        v = draw(st.sampled_from(_EDGES[f]))
        if f == "lag":
            t.ts_recv = t.ts_event + v if type(t.ts_event) is int else t.ts_recv
        elif f == "kind":
            t.kind, t.bid, t.ask = "quote", t.price, t.size
        else:
            setattr(t, f, v)
    return out


@settings(max_examples=400, deadline=None)
@given(st.one_of(_runs(), st.lists(_vticks, max_size=60)), st.sampled_from(sorted(VECTOR_RULES)),
       st.sampled_from([1, 2, 5, 32]))
def test_vector_precheck_equals_validate(seq_of_ticks, rules, min_vec):
    one = _validators(rules)
    many = _validators(rules)
    want_acc, want_problems = [], []
    for i, t in enumerate(seq_of_ticks):
        try:
            v = one.validate(_copy(t))
        except TypeError:  # e.g. a null time: validate raises, so does validate_many
            with pytest.raises(TypeError), patch.object(validation_mod, "_MIN_VEC", min_vec):
                _validators(rules).validate_many([_copy(t) for t in seq_of_ticks])
            return
        if v.accepted is not None:
            want_acc.append(v.accepted)
        if v.accepted is None or v.flags:
            want_problems.append((i, v))
    problems: list = []
    with patch.object(validation_mod, "_MIN_VEC", min_vec):
        got = many.validate_many([_copy(t) for t in seq_of_ticks], problems)
    assert got == want_acc
    assert problems == want_problems
    assert many.quality() == one.quality()
    assert _state_of(many) == _state_of(one)


@pytest.mark.parametrize("rules", sorted(VECTOR_RULES))
def test_vector_precheck_on_long_clean_and_dirty_runs(rules):
    """Windows, the scalar stretch after a short prefix, and state carried across
    calls: thousands of ticks, clean stretches with a rule firing now and then."""
    rng = __import__("random").Random(7)
    ticks, seq, ts = [], 0, 1_700_000_000 * S
    for i in range(6000):
        seq += 1
        ts += rng.choice([0, 1, 10**6, S])
        price = 100.0 + rng.random()
        if rng.random() < (0.002 if i < 3000 else 0.2):  # rare, then frequent triggers
            price = rng.choice([150.0, -1.0, None, 0.0])
            seq -= rng.choice([0, 2])
        ticks.append(Tick(symbol="A" if i % 1000 < 900 else "B", venue="t", kind="trade",
                          ts_event=ts, ts_recv=ts + rng.choice([0, 6 * S]) if i % 97 == 0 else ts,
                          price=price, size=1.0, side="buy", seq=seq))
    one, many, scalar = _validators(rules), _validators(rules), _validators(rules, vector=False)
    want = [(v.accepted is not None, [f.rule for f in v.flags]) for v in map(one.validate, map(_copy, ticks))]
    for lo in range(0, len(ticks), 1500):  # state carried from one call to the next
        chunk = [_copy(t) for t in ticks[lo:lo + 1500]]
        p1: list = []
        p2: list = []
        got = many.validate_many(chunk, p1)
        ref = scalar.validate_many([_copy(t) for t in ticks[lo:lo + 1500]], p2)
        assert got == ref and p1 == p2
        flagged = {i: v for i, v in p1}
        for i in range(len(chunk)):
            acc, flags = want[lo + i]
            v = flagged.get(i)
            assert (v is None and acc and not flags) or (
                v is not None and (v.accepted is not None) == acc and [f.rule for f in v.flags] == flags)
    assert many.quality() == one.quality() == scalar.quality()
    assert _state_of(many) == _state_of(one)
    assert isinstance(p1[0][1], Verdict) if p1 else True


def _clean(n: int, base: int = 1_700_000_000 * S, **last) -> list[Tick]:
    out = [Tick(symbol="A", venue="t", kind="trade", ts_event=base + i, ts_recv=base + i,
                price=100.0, size=1.0, side="buy", seq=i + 1) for i in range(n)]
    for f, v in last.items():
        setattr(out[-1], f, v)
    return out


@pytest.mark.parametrize("rules", sorted(VECTOR_RULES))
@pytest.mark.parametrize("name, edit", [
    ("jump exactly at the limit (50%)", {"price": 150.0}),
    ("jump over the limit", {"price": 150.5}),
    ("duplicate seq", {"seq": 40}),
    ("equal ts_event", {"ts_event": 1_700_000_000 * S + 39}),
    ("ts_event one above a float threshold", {"base": 18 * 10**17 - 40, "ts_event": 18 * 10**17 + 1,
                                               "ts_recv": 18 * 10**17 + 1}),
    ("ts_event one below a float threshold", {"base": 18 * 10**17 - 40, "ts_event": 18 * 10**17 - 1,
                                               "ts_recv": 18 * 10**17 - 1}),
    ("int size just above a float price", {"size": 2**53 + 1, "price": 2.0**53}),
    ("latency just over", {"ts_recv": 1_700_000_000 * S + 40 + 5 * S + 1}),
    ("latency exactly at", {"ts_recv": 1_700_000_000 * S + 40 + 5 * S}),
    ("null seq", {"seq": None}),
    ("null price", {"price": None}),
    ("int price", {"price": 100}),
    ("bool price", {"price": True}),
    ("huge int seq", {"seq": 2**63 - 1}),
    ("float seq", {"seq": 41.0}),
])
def test_vector_precheck_edges(rules, name, edit):
    """A clean run, then one tick at an edge, then more clean ticks: the vector
    precheck must stop (or not) exactly where the rule loop flags."""
    seq_of_ticks = _clean(41, **edit) + [
        Tick(symbol="A", venue="t", kind="trade", ts_event=1_700_000_000 * S + 50 + i,
             ts_recv=1_700_000_000 * S + 50 + i, price=100.0, size=1.0, side="buy", seq=60 + i)
        for i in range(40)]
    one = _validators(rules)
    want = [one.validate(_copy(t)) for t in seq_of_ticks]
    for min_vec in (1, 32):
        many, problems = _validators(rules), []
        with patch.object(validation_mod, "_MIN_VEC", min_vec):
            got = many.validate_many([_copy(t) for t in seq_of_ticks], problems)
        assert got == [v.accepted for v in want if v.accepted is not None], name
        assert problems == [(i, v) for i, v in enumerate(want) if v.accepted is None or v.flags], name
        assert many.quality() == one.quality() and _state_of(many) == _state_of(one)


def test_readme_rules_example_loads_and_flags_a_jump():
    """The TOML shown in README's producers section is a working rules file."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks, "README lost its rules example"
    v = Validator.from_toml(blocks[0])
    assert v.validate(trade(price=100.0, ts=10 * S)).accepted
    jumped = v.validate(trade(price=120.0, ts=11 * S))
    assert jumped.accepted and [f.rule for f in jumped.flags] == ["trade_price_jump"]
