"""Declarative, stateful tick validation (pure: no I/O, no metrics library).

Rules live in TOML (``producers/rules/default.toml`` documents the format).
A :class:`Validator` keeps per symbol (and per kind, because a venue's trade
and quote streams have separate clocks and sequences) the last accepted
event time, sequence and the last good values of the fields that jump and
fill rules use, so it detects jumps, staleness and out-of-order input.

``validate(tick)`` returns a :class:`Verdict`:

- ``accepted``: the tick (the same object, possibly with fields filled and
  rule names appended to ``tick.flags``) or None if rejected;
- ``flags``: :class:`Flag` (rule, severity, message) for every rule that fired;
- ``rejected_reason``: ``"<rule>: <message>"`` when rejected.

``quality()`` returns per-symbol completeness and validity ratios and which
``quality_thresholds`` they cross; the connection manager turns those into
metrics and alerts.

Semantics worth knowing:

- comparisons against a null field never fire (use ``is_null`` rules);
- ``max_jump_pct`` compares with the last *accepted* value of the field;
- ``out_of_order`` compares with the last accepted value of the field for
  the symbol and kind (``allow_equal`` defaults to true for times, false for
  ``seq``);
- ``stale_for`` fires when ``ts_recv - ts_event`` exceeds ``value`` seconds
  (``reference = "previous"``: when the gap since the previous accepted tick's
  ``ts_event`` exceeds it);
- ``fill`` with ``method = "last"`` forward-fills from the last accepted value
  (interpolation would need future ticks, which a stream does not have);
  with nothing to fill from (or older than ``max_age_s``) the tick is rejected.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from schemas.events import Tick

DEFAULT_RULES = Path(__file__).with_name("rules") / "default.toml"
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

def _getter(name: str, where: str) -> Callable[[Tick], Any]:
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
    from operator import attrgetter
    return attrgetter(name)


def _num(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise RuleError(f"{where}: value must be a number, got {value!r}")
    return float(value)


_Check = Callable[[Tick, _State], "str | None"]


def _compile_condition(c: dict, where: str) -> tuple[_Check, set[str]]:
    """Return check(tick, state) -> message|None and the fields whose good values it tracks."""
    check, tracked = _compile_condition_check(c, where)
    return check, tracked


class _Expr:
    """Builds the boolean source of a condition for the generated precheck."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.n = 0

    def name(self, prefix: str, value: Any = None, bind: bool = False) -> str:
        self.n += 1
        nm = f"_{prefix}{self.n}"
        if bind:
            self.ns[nm] = value
        return nm

    def field(self, fname: str) -> str | None:
        if fname in TICK_FIELDS:
            return f"t.{fname}"
        if fname == "latency_s":
            return f"((t.ts_recv - t.ts_event) / {_NS})"
        return None

    def condition(self, c: dict, check: _Check) -> str:
        """Exactly when ``check`` fires; falls back to calling ``check`` itself."""
        src = self._condition(c)
        if src is None:
            return f"({self.name('c', check, bind=True)}(t, st) is not None)"
        return src

    def _condition(self, c: dict) -> str | None:
        op, g = c["operator"], self.field(c["field"])
        negate = bool(c.get("negate", False))
        if g is None:
            return None
        v = self.name("v")
        if op in ("greater_than", "less_than"):
            sym = ">" if op == "greater_than" else "<"
            if c.get("inclusive"):
                sym += "="
            if "value_field" in c:
                g2 = self.field(c["value_field"])
                if g2 is None:
                    return None
                r = self.name("r")
                src = f"(({v} := {g}) is not None and ({r} := {g2}) is not None and {v} {sym} {r})"
            else:
                k = self.name("k", float(c["value"]), bind=True)
                src = f"(({v} := {g}) is not None and {v} {sym} {k})"
        elif op == "between":
            lo = self.name("k", float(c["value"][0]), bind=True)
            hi = self.name("k", float(c["value"][1]), bind=True)
            inner = f"{lo} <= {v} <= {hi}"
            if negate:
                inner, negate = f"not ({inner})", False
            src = f"(({v} := {g}) is not None and {inner})"
        elif op == "is_null":
            src = f"({g} is None)"
        elif op == "not_null":
            src = f"({g} is not None)"
        elif op == "max_jump_pct":
            last = self.name("l")
            k = self.name("k", float(c["value"]), bind=True)
            f = c["field"]
            src = (f"(({v} := {g}) is not None and ({last} := st.good.get({f!r})) is not None "
                   f"and {last} != 0 and abs({v} - {last}) / abs({last}) * 100.0 > {k})")
        elif op == "stale_for":
            k = self.name("k", int(float(c["value"]) * _NS), bind=True)
            if c.get("reference", "recv") == "recv":
                src = f"(t.ts_recv - t.ts_event > {k})"
            else:
                prev = self.name("p")
                src = (f"(({prev} := st.last.get('ts_event')) is not None "
                       f"and t.ts_event - {prev} > {k})")
        elif op == "out_of_order":
            f = c["field"]
            prev = self.name("p")
            allow_equal = bool(c.get("allow_equal", f != "seq"))
            cmp = f"{v} < {prev}" if allow_equal else f"{v} <= {prev}"
            src = (f"(({v} := {g}) is not None and ({prev} := st.last.get({f!r})) is not None "
                   f"and {cmp})")
        else:
            return None
        return f"(not {src})" if negate else src


def _compile_condition_check(c: dict, where: str) -> tuple[_Check, set[str]]:
    if not isinstance(c, dict):
        raise RuleError(f"{where}: a condition must be a table")
    op = c.get("operator")
    if op not in OPERATORS:
        raise RuleError(f"{where}: unknown operator {op!r} (operators: {', '.join(OPERATORS)})")
    fname = c.get("field")
    if not isinstance(fname, str):
        raise RuleError(f"{where}: condition needs a field")
    get = _getter(fname, where)
    negate = bool(c.get("negate", False))
    tracked: set[str] = set()
    check: _Check

    if op in ("greater_than", "less_than"):
        inclusive = bool(c.get("inclusive", False))
        if "value_field" in c:
            other = _getter(c["value_field"], where)
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
    if len(compiled) == 1:
        check = compiled[0]
    elif match == "all":
        def check(t, st, _cs=tuple(compiled)):
            msgs = []
            for c in _cs:
                m = c(t, st)
                if m is None:
                    return None
                msgs.append(m)
            return " and ".join(msgs)
    else:
        def check(t, st, _cs=tuple(compiled)):
            for c in _cs:
                m = c(t, st)
                if m is not None:
                    return m
            return None
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


def _fast_body(kind: str, rules: list[_Rule], required: tuple[str, ...],
               ordered: tuple[str, ...], tracked: tuple[str, ...]) -> tuple[list[str], dict]:
    """Source lines (unindented) of the fast path for one kind, on names ``t``, ``st``
    and ``c``: ``REJECT`` where a rule fires, ``ACCEPT`` at the end."""
    ex = _Expr()
    rule_srcs = []
    for rule in rules:
        parts = [ex.condition(c, chk) for c, chk in zip(rule.conditions, rule.checks)]
        src = "(" + (" and " if rule.match == "all" else " or ").join(parts) + ")"
        if rule.symbols is not None:
            syms = ex.name("s", rule.symbols, bind=True)
            src = f"(t.symbol in {syms} and {src})"
        rule_srcs.append(src)
    fires = " or ".join(rule_srcs) or "False"
    complete = " and ".join(f"t.{f} is not None" for f in required) or "True"
    lines = [
        "c.total += 1",
        "c.last_recv = t.ts_recv",
        f"if {complete}:",
        "    c.complete += 1",
        f"if {fires}:",
        "    REJECT",
        "c.accepted += 1",
    ]
    if ordered:
        lines.append("last = st.last")
        for f in ordered:
            lines += [f"x = t.{f}", "if x is not None:", f"    last[{f!r}] = x"]
    if tracked:
        lines += ["good = st.good", "gts = st.good_ts"]
        for f in tracked:
            lines += [f"x = t.{f}", "if x is not None:",
                      f"    good[{f!r}] = x", f"    gts[{f!r}] = t.ts_recv"]
    lines.append("ACCEPT")
    return lines, ex.ns


def _generate_fast(kind: str, rules: list[_Rule], required: tuple[str, ...],
                   ordered: tuple[str, ...], tracked: tuple[str, ...]) -> Callable:
    """Generate ``fast(t, st, c) -> bool``: count the tick and, when no rule fires
    (the common case), accept it and update state in straight-line code; return
    False to send the tick through the rule loop. The precheck is built from the
    same conditions as the rule loop and must fire exactly when one of them does
    (tests/unit/test_validation.py checks both paths agree)."""
    body, ns = _fast_body(kind, rules, required, ordered, tracked)
    lines = ["def fast(t, st, c):"]
    for ln in body:
        ln = ln.replace("REJECT", "return False").replace("ACCEPT", "return True")
        lines.append("    " + ln)
    source = "\n".join(lines)
    ns = dict(ns)
    exec(compile(source, f"<ticktide validation fast path: {kind}>", "exec"), ns)  # noqa: S102
    fast = ns["fast"]
    fast.source = source  # for debugging
    return fast


def _generate_many(bodies: dict[str, tuple[list[str], dict]]) -> Callable:
    """Generate ``many(ticks, states, counts, out, slow)``: the per-kind fast paths
    inlined in one loop over a batch (no call, no Verdict per accepted tick).
    Accepted ticks are appended to ``out``; a tick for which a rule fires goes to
    ``slow(i, tick, kind, st, c)`` (the rule loop), an unknown kind to
    ``slow(i, tick, kind, None, None)``."""
    lines = [
        "def many(ticks, states, counts, out, slow):",
        "    append = out.append",
        "    cget = counts.get",
    ]
    for kind in bodies:
        lines.append(f"    states_{kind} = states[{kind!r}]")
    lines += [
        "    psym = None",
        "    c = None",
        "    for i, t in enumerate(ticks):",
        "        kind = t.kind",
        "        sym = t.symbol",
        "        if sym is not psym:",
        "            c = cget(sym)",
        "            psym = sym",
    ]
    ns: dict[str, Any] = {"_State": _State, "_Counts": _Counts}
    first = True
    for n_kind, (kind, (body, kns)) in enumerate(bodies.items()):
        # the generated names of each kind are made unique by a prefix
        for k2, v2 in kns.items():
            ns[f"{k2}_{n_kind}"] = v2
        lines.append(f"        {'if' if first else 'elif'} kind == {kind!r}:")
        first = False
        lines += [
            "            if c is None:",
            "                c = counts[sym] = _Counts()",
            f"            st = states_{kind}.get(sym)",
            "            if st is None:",
            f"                st = states_{kind}[sym] = _State()",
        ]
        for ln in body:
            for k2 in kns:
                ln = _rename(ln, k2, f"{k2}_{n_kind}")
            ln = ln.replace("REJECT", f"slow(i, t, {kind!r}, st, c)\n" + " " * 12 + " " * _indent(ln)
                            + "continue").replace("ACCEPT", "append(t)")
            lines.append("            " + ln)
    lines += [
        "        else:",
        "            slow(i, t, kind, None, None)",
    ]
    source = "\n".join(lines)
    exec(compile(source, "<ticktide validation batch path>", "exec"), ns)  # noqa: S102
    many = ns["many"]
    many.source = source
    return many


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _rename(line: str, old: str, new: str) -> str:
    import re
    return re.sub(rf"\b{re.escape(old)}\b", new, line)


# --------------------------------------------------------------------------- validator

class Validator:
    def __init__(self, config: dict | None = None, *, fast: bool = True) -> None:
        self.use_fast = fast
        if config is None:
            with open(DEFAULT_RULES, "rb") as fh:
                config = tomllib.load(fh)
        self.config = config
        self._rules: dict[str, list[_Rule]] = {k: [] for k in KINDS}
        self._tracked: dict[str, tuple[str, ...]] = {}
        self._ordered: dict[str, tuple[str, ...]] = {}
        tracked = {k: set() for k in KINDS}
        ordered = {k: set() for k in KINDS}
        for i, r in enumerate(config.get("rules", [])):
            rule, tr, od, kinds = _compile_rule(r, i)
            for k in kinds:
                self._rules[k].append(rule)
                tracked[k] |= tr
                ordered[k] |= od
        for k in KINDS:
            self._tracked[k] = tuple(sorted(tracked[k]))
            self._ordered[k] = tuple(sorted(ordered[k]))
        q = config.get("quality", {})
        self.min_samples = int(q.get("min_samples", 100))
        req = q.get("required_fields", {"trade": ["price", "size", "side"], "quote": ["bid", "ask"]})
        self._required = {k: tuple(req.get(k, ())) for k in KINDS}
        for k, fields in self._required.items():
            for f in fields:
                if f not in TICK_FIELDS:
                    raise RuleError(f"quality.required_fields.{k}: unknown field {f!r}")
        th = config.get("quality_thresholds", {})
        self._default_thresholds = dict(th.get("default", {}))
        self._symbol_thresholds = {s: dict(v) for s, v in th.items() if s != "default"}
        self._states: dict[str, dict[str, _State]] = {k: {} for k in KINDS}
        self._counts: dict[str, _Counts] = {}
        self._fast = {
            k: _generate_fast(k, self._rules[k], self._required[k], self._ordered[k], self._tracked[k])
            for k in KINDS
        }
        self._many = _generate_many({
            k: _fast_body(k, self._rules[k], self._required[k], self._ordered[k], self._tracked[k])
            for k in KINDS
        })

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "Validator":
        with open(path or DEFAULT_RULES, "rb") as fh:
            return cls(tomllib.load(fh))

    @classmethod
    def from_toml(cls, text: str) -> "Validator":
        return cls(tomllib.loads(text))

    # -- the hot path -------------------------------------------------------------
    def validate(self, tick: Tick) -> Verdict:
        kind = tick.kind
        states = self._states.get(kind)
        if states is None:
            return Verdict(None, [], f"kind: unknown tick kind {kind!r}")
        symbol = tick.symbol
        st = states.get(symbol)
        if st is None:
            st = states[symbol] = _State()
        counts = self._counts.get(symbol)
        if counts is None:
            counts = self._counts[symbol] = _Counts()
        if self.use_fast:
            if self._fast[kind](tick, st, counts):
                return Verdict(tick)
        else:
            counts.total += 1
            counts.last_recv = tick.ts_recv
            for f in self._required[kind]:
                if getattr(tick, f) is None:
                    break
            else:
                counts.complete += 1
        return self._rule_loop(tick, kind, symbol, st, counts)

    def validate_many(self, ticks, problems: list | None = None) -> list[Tick]:
        """Validate a batch in order: the accepted ticks (the same objects, possibly
        filled/flagged), exactly as ``validate`` would accept them one by one.

        When ``problems`` is a list, ``(index, Verdict)`` is appended to it for every
        tick that was rejected or got a flag (those are the ticks a caller dead-letters
        or counts); ticks no rule fired on cost no Verdict.
        """
        out: list[Tick] = []
        if not self.use_fast:
            for i, t in enumerate(ticks):
                v = self.validate(t)
                if v.accepted is not None:
                    out.append(v.accepted)
                if problems is not None and (v.accepted is None or v.flags):
                    problems.append((i, v))
            return out
        append = out.append
        rule_loop = self._rule_loop

        def slow(i, t, kind, st, c):
            if st is None:
                v = Verdict(None, [], f"kind: unknown tick kind {kind!r}")
            else:
                v = rule_loop(t, kind, t.symbol, st, c)
            if v.accepted is not None:
                append(v.accepted)
            if problems is not None and (v.accepted is None or v.flags):
                problems.append((i, v))

        self._many(ticks, self._states, self._counts, out, slow)
        return out

    def _rule_loop(self, tick: Tick, kind: str, symbol: str, st: _State, counts: _Counts) -> Verdict:
        flags: list[Flag] = []
        serious = False
        filled = False
        for rule in self._rules[kind]:
            if rule.symbols is not None and symbol not in rule.symbols:
                continue
            msg = rule.check(tick, st)
            if msg is None:
                continue
            for typ, sev, spec in rule.actions:
                if typ == "reject":
                    counts.rejected += 1
                    return Verdict(None, flags, f"{rule.name}: {msg}")
                if typ == "flag":
                    flags.append(Flag(rule.name, sev, msg))
                    tick.flags.append(rule.name)
                else:  # fill
                    fname, method, value, max_age = spec
                    if method == "last":
                        value = st.good.get(fname)
                        if value is not None and max_age is not None and \
                                tick.ts_recv - st.good_ts[fname] > max_age * _NS:
                            value = None
                        if value is None:
                            counts.rejected += 1
                            return Verdict(None, flags, f"{rule.name}: {msg}; no recent value to fill {fname}")
                    setattr(tick, fname, value)
                    filled = True
                    flags.append(Flag(rule.name, sev, f"{msg}; filled {fname}={value!r}"))
                    tick.flags.append(rule.name)
                if sev != "info":
                    serious = True

        # accepted: remember state
        counts.accepted += 1
        if serious:
            counts.flagged += 1
        if filled:
            counts.filled += 1
        last = st.last
        for f in self._ordered[kind]:
            v = getattr(tick, f)
            if v is not None:
                last[f] = v
        good = st.good
        for f in self._tracked[kind]:
            v = getattr(tick, f)
            if v is not None:
                good[f] = v
                st.good_ts[f] = tick.ts_recv
        return Verdict(tick, flags, None)

    # -- reporting ------------------------------------------------------------------
    def thresholds_for(self, symbol: str) -> dict[str, float]:
        out = dict(self._default_thresholds)
        out.update(self._symbol_thresholds.get(symbol, {}))
        return out

    def quality(self) -> dict[str, SymbolQuality]:
        out: dict[str, SymbolQuality] = {}
        for symbol, c in self._counts.items():
            completeness = c.complete / c.total if c.total else 1.0
            validity = (c.accepted - c.flagged) / c.total if c.total else 1.0
            th = self.thresholds_for(symbol)
            ready = c.total >= self.min_samples
            breaches = []
            if ready:
                if "completeness" in th and completeness < th["completeness"]:
                    breaches.append("completeness")
                if "validity" in th and validity < th["validity"]:
                    breaches.append("validity")
            out[symbol] = SymbolQuality(
                symbol=symbol, total=c.total, accepted=c.accepted, rejected=c.rejected,
                flagged=c.flagged, filled=c.filled, complete=c.complete,
                completeness=completeness, validity=validity, thresholds=th,
                breaches=breaches, ready=ready, last_recv=c.last_recv,
            )
        return out

    def stale_symbols(self, now_ns: int, after_s: float) -> list[str]:
        """Symbols whose latest tick was received more than ``after_s`` before ``now_ns``."""
        limit = now_ns - int(after_s * _NS)
        return sorted(s for s, c in self._counts.items() if c.last_recv < limit)

    def reset(self, symbol: str | None = None) -> None:
        """Forget ordering/jump state (e.g. after a reconnect); quality counts are kept."""
        for states in self._states.values():
            if symbol is None:
                states.clear()
            else:
                states.pop(symbol, None)
