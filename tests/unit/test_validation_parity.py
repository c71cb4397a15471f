"""Random rules x random ticks: the accelerated twins of the validation rules equal the reference.

The reference is the compiled closures of ``producers.validation.rules`` run tick by
tick (``Validator(fast=False)``). Its twins: the generated per-tick path
(``Validator.validate``, the live feed's path) and the batch path (the numpy precheck
of ``producers.validation.vector`` in ``validate_many``). Rule sets are drawn from every
operator, field, option and action the rules format has.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.validation import TICK_FIELDS, VIRTUAL_FIELDS, RuleError, Validator
from schemas.events import Tick

S = 1_000_000_000
NUMERIC = ("price", "size", "bid", "ask", "bid_size", "ask_size", "trade_id", "seq", "ts_event", "ts_recv")
COMPARED = ("price", "size", "bid", "seq")  # drawn more often: the fields the ticks below vary
FILLABLE = ("price", "size", "bid", "ask", "bid_size", "ask_size")
# rule values and tick values drawn mostly from one pool, so boundaries (== value) are hit often
POOL = [0.0, 1.0, 100.0, 100.5, -1.0]
values = st.one_of(st.sampled_from(POOL), st.sampled_from(POOL), st.sampled_from([1.7e18, 2**53 + 1]),
                   st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6))


@st.composite
def conditions(draw):
    op = draw(st.sampled_from(["greater_than", "less_than", "between"] * 3 + [
        "is_null", "not_null", "max_jump_pct", "stale_for", "out_of_order"]))
    c: dict = {"operator": op, "negate": draw(st.sampled_from([False, False, False, True]))}
    if op in ("greater_than", "less_than"):
        c["field"] = draw(st.sampled_from(COMPARED + COMPARED + NUMERIC + VIRTUAL_FIELDS))
        c["inclusive"] = draw(st.booleans())
        if draw(st.booleans()):
            c["value_field"] = draw(st.sampled_from(NUMERIC + VIRTUAL_FIELDS))
        else:
            c["value"] = draw(values)
    elif op == "between":
        c["field"] = draw(st.sampled_from(NUMERIC + VIRTUAL_FIELDS))
        lo, hi = sorted([draw(values), draw(values)])
        c["value"] = [lo, hi]
    elif op in ("is_null", "not_null"):
        c["field"] = draw(st.sampled_from(TICK_FIELDS))
    elif op == "max_jump_pct":
        c["field"] = draw(st.sampled_from(NUMERIC))
        c["value"] = draw(st.sampled_from([0.5, 5.0, 10.0, 50.0]))
    elif op == "stale_for":
        c["field"] = "ts_event"
        c["value"] = draw(st.sampled_from([0.5, 1.0, 3.0]))
        c["reference"] = draw(st.sampled_from(["recv", "previous"]))
    else:
        c["field"] = draw(st.sampled_from(["ts_event", "seq", "trade_id", "price"]))
        c["allow_equal"] = draw(st.booleans())
    return c


@st.composite
def actions(draw):
    typ = draw(st.sampled_from(["flag", "flag", "reject", "fill"]))
    a: dict = {"type": typ, "severity": draw(st.sampled_from(["info", "warning", "critical"]))}
    if typ == "fill":
        a["field"] = draw(st.sampled_from(FILLABLE))
        if draw(st.booleans()):
            a["method"] = "last"
            a["max_age_s"] = draw(st.sampled_from([1.0, 5.0]))
        else:
            a.update(method="value", value=draw(values))
    return a


@st.composite
def rule_sets(draw):
    rules = []
    for i in range(draw(st.integers(1, 4))):
        r = {"name": f"r{i}", "conditions": draw(st.lists(conditions(), min_size=1, max_size=3)),
             "actions": draw(st.lists(actions(), min_size=1, max_size=2)),
             "match": draw(st.sampled_from(["all", "any"]))}
        if draw(st.booleans()):
            r["kinds"] = [draw(st.sampled_from(["trade", "quote"]))]
        if draw(st.integers(0, 3)) == 0:
            r["symbols"] = ["A"]
        rules.append(r)
    return {"rules": rules, "quality": {"min_samples": 3}}


def _ticks(null_weight: int):
    """Ticks of two symbols and kinds; ``null_weight`` in 10 values are null (the vector
    precheck hands nulls and mixed types back to the per-tick path, so its test keeps them rare)."""
    def maybe(s):
        return st.one_of(*([st.none()] * null_weight), *([s] * (10 - null_weight)))

    prices = st.one_of(st.sampled_from(POOL), st.sampled_from(POOL),
                       st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=1e6))
    return st.builds(
        lambda kind, sym, p, s, ts, lag, seq, tid: Tick(
            symbol=sym, venue="t", kind=kind, ts_event=ts, ts_recv=ts + lag,
            price=p if kind == "trade" else None, size=s if kind == "trade" else None,
            side="buy" if kind == "trade" else None, trade_id=tid if kind == "trade" else None,
            bid=p if kind == "quote" else None, ask=s if kind == "quote" else None,
            bid_size=1.0 if kind == "quote" else None, ask_size=1.0 if kind == "quote" else None, seq=seq),
        st.sampled_from(["trade"] * 4 + ["quote"]), st.sampled_from(["A"] * 4 + ["B"]),
        maybe(prices), maybe(prices),
        st.integers(0, 40).map(lambda x: 1_700_000_000 * S + x * S // 2),
        st.sampled_from([0, S // 2, 2 * S, 4 * S, -S]),
        maybe(st.integers(0, 8)), maybe(st.integers(0, 8)),
    )


def _copy(t: Tick) -> Tick:
    return Tick(**{f: getattr(t, f) for f in t.__struct_fields__ if f != "flags"})


def _runs(draw_ticks: list[Tick]) -> list[Tick]:
    # long enough runs of one symbol and kind for the vector precheck to engage
    return sorted(draw_ticks, key=lambda t: (t.symbol, t.kind)) + draw_ticks


def _validator(config: dict, **kw) -> Validator | None:
    try:
        return Validator(config, **kw)
    except RuleError:
        return None  # e.g. max_jump_pct on a field the format refuses: not a parity question


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), st.lists(_ticks(null_weight=3), max_size=30))
def test_generated_per_tick_path_equals_the_reference(config, seq_of_ticks):
    fast, ref = _validator(config, fast=True), _validator(config, fast=False)
    if ref is None:
        assert fast is None
        return
    for t in seq_of_ticks:
        assert fast.validate(_copy(t)) == ref.validate(_copy(t))
    assert fast.quality() == ref.quality()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), st.lists(_ticks(null_weight=1), min_size=16, max_size=48), st.sampled_from([1, 4, 32]))
def test_vector_batch_path_equals_the_reference(config, seq_of_ticks, min_vec):
    from unittest.mock import patch

    import producers.validation.validator as validator_mod

    ref, many = _validator(config, fast=False), _validator(config)
    if ref is None:
        return
    batch = _runs(seq_of_ticks)
    want_acc, want_problems = [], []
    for i, t in enumerate(batch):
        v = ref.validate(_copy(t))
        if v.accepted is not None:
            want_acc.append(v.accepted)
        if v.accepted is None or v.flags:
            want_problems.append((i, v))
    problems: list = []
    with patch.object(validator_mod, "_MIN_VEC", min_vec):
        got = many.validate_many([_copy(t) for t in batch], problems)
    assert got == want_acc
    assert problems == want_problems
    assert many.quality() == ref.quality()
