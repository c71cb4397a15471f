"""Validation rules: the rules-file model (TOML tables -> compiled checks), the
per-symbol state and the result types. See :mod:`producers.validation`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import msgspec

from schemas.events import Tick

SEVERITIES = ("info", "warning", "critical")
OPERATORS = ("greater_than", "less_than", "between", "is_null", "not_null",
             "max_jump_pct", "stale_for", "out_of_order")
TICK_FIELDS = ("price", "size", "side", "bid", "ask", "bid_size", "ask_size",
               "trade_id", "seq", "ts_event", "ts_recv")
VIRTUAL_FIELDS = ("latency_s", "spread_bps")
KINDS = ("trade", "quote")
_NS = 1_000_000_000


class RuleError(ValueError):
    """A rules file that cannot be compiled; the message names the rule."""


@dataclass(frozen=True, slots=True)
class Flag:
    rule: str
    severity: str
    message: str


class Verdict(msgspec.Struct, gc=False):
    accepted: Tick | None
    flags: list[Flag] = []
    rejected_reason: str | None = None


@dataclass(slots=True)
class SymbolQuality:
    symbol: str
    total: int
    accepted: int
    rejected: int
    flagged: int  # accepted with a flag of severity >= warning (fills included)
    filled: int
    complete: int
    completeness: float
    validity: float
    thresholds: dict[str, float]
    breaches: list[str]  # thresholds crossed ("completeness", "validity"); empty below min_samples
    ready: bool  # total >= min_samples
    last_recv: int  # ts_recv of the latest tick seen


class _State:
    __slots__ = ("last", "good", "good_ts")

    def __init__(self) -> None:
        self.last: dict[str, Any] = {}  # field -> last accepted value (out_of_order)
        self.good: dict[str, float] = {}  # field -> last accepted non-null value (jump, fill)
        self.good_ts: dict[str, int] = {}  # field -> ts_recv of that value


class _Counts:
    __slots__ = ("total", "accepted", "rejected", "flagged", "filled", "complete", "last_recv")

    def __init__(self) -> None:
        self.total = self.accepted = self.rejected = self.flagged = 0
        self.filled = self.complete = self.last_recv = 0


# --------------------------------------------------------------------------- compile

def _getter(name: str, where: str, fields: tuple[str, ...] = TICK_FIELDS) -> Callable[[Tick], Any]:
    from operator import attrgetter

    if fields is not TICK_FIELDS:  # another record type (history bars): its own fields, no virtual ones
        if name not in fields:
            raise RuleError(f"{where}: unknown field {name!r} (fields: {', '.join(fields)})")
        return attrgetter(name)
    if name == "latency_s":
        return lambda t: (t.ts_recv - t.ts_event) / _NS
    if name == "spread_bps":
        def spread(t: Tick):
            b, a = t.bid, t.ask
            if b is None or a is None or a + b == 0:
                return None
            return (a - b) / ((a + b) / 2) * 10_000
        return spread
    if name not in TICK_FIELDS:
        raise RuleError(f"{where}: unknown field {name!r} (fields: {', '.join(TICK_FIELDS + VIRTUAL_FIELDS)})")
    return attrgetter(name)


def _num(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise RuleError(f"{where}: value must be a number, got {value!r}")
    return float(value)


_Check = Callable[[Tick, _State], "str | None"]


def _compile_condition(c: dict, where: str, fields: tuple[str, ...] = TICK_FIELDS) -> tuple[_Check, set[str]]:
    """Return check(tick, state) -> message|None and the fields whose good values it tracks.

    ``fields``: the record's fields when it is not a Tick (``producers.history`` compiles bar rules here)."""
    check, tracked = _compile_condition_check(c, where, fields)
    return check, tracked



# the reference compiler and state, public for other record types (producers.history's bar rules)
def compile_condition(c: dict, where: str, fields: tuple[str, ...] = TICK_FIELDS) -> tuple[_Check, set[str]]:
    return _compile_condition(c, where, fields)


RuleState = _State


def _compile_condition_check(c: dict, where: str,
                             fields: tuple[str, ...] = TICK_FIELDS) -> tuple[_Check, set[str]]:
    if not isinstance(c, dict):
        raise RuleError(f"{where}: a condition must be a table")
    op = c.get("operator")
    if op not in OPERATORS:
        raise RuleError(f"{where}: unknown operator {op!r} (operators: {', '.join(OPERATORS)})")
    fname = c.get("field")
    if not isinstance(fname, str):
        raise RuleError(f"{where}: condition needs a field")
    get = _getter(fname, where, fields)
    negate = bool(c.get("negate", False))
    tracked: set[str] = set()
    check: _Check

    if op in ("greater_than", "less_than"):
        inclusive = bool(c.get("inclusive", False))
        if "value_field" in c:
            other = _getter(c["value_field"], where, fields)
            label = c["value_field"]

            def ref(t, _o=other):
                return _o(t)
        else:
            threshold = _num(c.get("value"), where)
            label = repr(threshold)

            def ref(t, _v=threshold):
                return _v
        sym = (">=" if inclusive else ">") if op == "greater_than" else ("<=" if inclusive else "<")
        if op == "greater_than":
            def test(v, r, _inc=inclusive):
                return v >= r if _inc else v > r
        else:
            def test(v, r, _inc=inclusive):
                return v <= r if _inc else v < r

        def check(t, st, _g=get, _ref=ref, _test=test, _f=fname, _s=sym, _l=label):
            v = _g(t)
            if v is None:
                return None
            r = _ref(t)
            if r is None or not _test(v, r):
                return None
            return f"{_f}={v!r} {_s} {_l}"

    elif op == "between":
        value = c.get("value")
        if not (isinstance(value, list) and len(value) == 2):
            raise RuleError(f"{where}: between needs value = [low, high]")
        lo, hi = _num(value[0], where), _num(value[1], where)

        def check(t, st, _g=get, _lo=lo, _hi=hi, _f=fname):
            v = _g(t)
            if v is not None and _lo <= v <= _hi:
                return f"{_f}={v!r} in [{_lo!r}, {_hi!r}]"
            return None

        if negate:
            def check(t, st, _g=get, _lo=lo, _hi=hi, _f=fname):  # noqa: F811
                v = _g(t)
                if v is not None and not (_lo <= v <= _hi):
                    return f"{_f}={v!r} outside [{_lo!r}, {_hi!r}]"
                return None
            negate = False

    elif op == "is_null":
        def check(t, st, _g=get, _f=fname):
            return f"{_f} is null" if _g(t) is None else None

    elif op == "not_null":
        def check(t, st, _g=get, _f=fname):
            v = _g(t)
            return f"{_f}={v!r} is not null" if v is not None else None

    elif op == "max_jump_pct":
        pct = _num(c.get("value"), where)
        if fname in VIRTUAL_FIELDS:
            raise RuleError(f"{where}: max_jump_pct needs a tick field")
        tracked.add(fname)

        def check(t, st, _g=get, _f=fname, _p=pct):
            v = _g(t)
            if v is None:
                return None
            last = st.good.get(_f)
            if last is None or last == 0:
                return None
            jump = abs(v - last) / abs(last) * 100.0
            if jump > _p:
                return f"{_f} moved {jump:.2f}% ({last!r} -> {v!r}) > {_p}%"
            return None

    elif op == "stale_for":
        secs = _num(c.get("value"), where)
        limit = int(secs * _NS)
        reference = c.get("reference", "recv")
        if reference == "recv":
            def check(t, st, _l=limit, _s=secs):
                age = t.ts_recv - t.ts_event
                if age > _l:
                    return f"arrived {age / _NS:.3f}s after ts_event (> {_s}s)"
                return None
        elif reference == "previous":
            def check(t, st, _l=limit, _s=secs):
                prev = st.last.get("ts_event")
                if prev is not None and t.ts_event - prev > _l:
                    return f"{(t.ts_event - prev) / _NS:.3f}s since the previous tick (> {_s}s)"
                return None
        else:
            raise RuleError(f"{where}: stale_for reference must be 'recv' or 'previous'")

    else:  # out_of_order
        if fname in VIRTUAL_FIELDS:
            raise RuleError(f"{where}: out_of_order needs a tick field")
        allow_equal = bool(c.get("allow_equal", fname != "seq"))

        def check(t, st, _g=get, _f=fname, _eq=allow_equal):
            v = _g(t)
            if v is None:
                return None
            prev = st.last.get(_f)
            if prev is None:
                return None
            if v < prev or (v == prev and not _eq):
                return f"{_f}={v!r} after {prev!r}"
            return None

    if negate:
        inner = check

        def check(t, st, _i=inner, _w=where):  # noqa: F811
            return None if _i(t, st) is not None else f"not ({_w})"

    return check, tracked


class _Rule:
    __slots__ = ("name", "check", "actions", "symbols", "conditions", "checks", "match")

    def __init__(self, name, check, actions, symbols, conditions=(), checks=(), match="all"):
        self.name = name
        self.check = check
        self.actions = actions  # list of (type, severity, fill spec)
        self.symbols = symbols
        self.conditions = conditions  # raw condition tables (for the generated precheck)
        self.checks = checks  # compiled per-condition checks
        self.match = match


def combine_checks(checks: list[_Check], match: str) -> _Check:
    """One check from a rule's conditions: ``all`` fire (their messages joined) or ``any`` fires (the first)."""
    if len(checks) == 1:
        return checks[0]
    if match == "all":
        def check_all(t, st, _cs=tuple(checks)):
            msgs = []
            for c in _cs:
                m = c(t, st)
                if m is None:
                    return None
                msgs.append(m)
            return " and ".join(msgs)
        return check_all

    def check_any(t, st, _cs=tuple(checks)):
        for c in _cs:
            m = c(t, st)
            if m is not None:
                return m
        return None
    return check_any


def _compile_rule(r: dict, index: int) -> tuple[_Rule, set[str], set[str], tuple[str, ...]]:
    name = r.get("name") or f"rule{index}"
    where = f"rule {name!r}"
    kinds = tuple(r.get("kinds", KINDS))
    for k in kinds:
        if k not in KINDS:
            raise RuleError(f"{where}: unknown kind {k!r}")
    conds = r.get("conditions")
    if not isinstance(conds, list) or not conds:
        raise RuleError(f"{where}: needs at least one condition")
    compiled = []
    tracked: set[str] = set()
    ordered: set[str] = set()
    for i, c in enumerate(conds):
        chk, tr = _compile_condition(c, f"{where} condition {i}")
        compiled.append(chk)
        tracked |= tr
        if c.get("operator") == "out_of_order" or (
            c.get("operator") == "stale_for" and c.get("reference") == "previous"
        ):
            ordered.add(c["field"] if c.get("operator") == "out_of_order" else "ts_event")
    match = r.get("match", "all")
    if match not in ("all", "any"):
        raise RuleError(f"{where}: match must be 'all' or 'any'")
    check = combine_checks(compiled, match)
    actions = []
    raw_actions = r.get("actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise RuleError(f"{where}: needs at least one action")
    for a in raw_actions:
        typ = a.get("type")
        sev = a.get("severity", "warning" if typ != "reject" else "critical")
        if sev not in SEVERITIES:
            raise RuleError(f"{where}: unknown severity {sev!r}")
        if typ in ("flag", "reject"):
            actions.append((typ, sev, None))
        elif typ == "fill":
            f = a.get("field")
            if f not in ("price", "size", "bid", "ask", "bid_size", "ask_size"):
                raise RuleError(f"{where}: fill needs a numeric tick field, got {f!r}")
            method = a.get("method", "last")
            if method == "last":
                tracked.add(f)
                spec = (f, "last", None, a.get("max_age_s"))
            elif method == "value":
                spec = (f, "value", _num(a.get("value"), where), None)
            else:
                raise RuleError(f"{where}: fill method must be 'last' or 'value'")
            actions.append(("fill", sev, spec))
        else:
            raise RuleError(f"{where}: unknown action {typ!r} (flag, reject, fill)")
    symbols = frozenset(r["symbols"]) if r.get("symbols") else None
    rule = _Rule(name, check, actions, symbols, tuple(conds), tuple(compiled), match)
    return rule, tracked, ordered, kinds
