"""The vectorized precheck of :meth:`producers.validation.Validator.validate_many`.

For a window of ticks of one kind and one symbol, numpy columns are built once
and every rule's condition is evaluated over the whole window as array ops,
assuming every tick before it was accepted (which is what the state then is):
``max_jump_pct`` against the previous price (the first seeded with the
symbol's last good value), ``out_of_order`` and ``stale_for reference =
"previous"`` against the shifted column (seeded with the last accepted value),
the others elementwise. The result is the number ``m`` of leading ticks on
which no rule fires and no field the rules, the quality counts or the state
read is null: the caller accepts those in one step (state and counters set
as the tick-by-tick path would leave them) and runs the tick-by-tick path
from tick ``m``.

Exactness: a column is used only when numpy computes exactly what Python
computes on the tick values, else the window raises :class:`NoVec` and goes
through the tick-by-tick path. Float columns must hold values of magnitude
<= 2**52 (so an int among them converts exactly and differences are exact),
int columns values of magnitude <= 2**61 (differences cannot overflow);
ints are compared with float thresholds through integer bounds; a jump on an
int field or a latency needs magnitudes <= 2**52 / 2**53 (numpy divides the
exactly converted doubles, as CPython does for such ints). Anything else
(bools, strings, ints beyond int64, spread_bps) is left to the rule loop.
tests/unit/test_validation.py checks ``validate_many == validate`` tick by
tick with hypothesis, including these edges.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Callable

import numpy as np

from producers.validation.rules import TICK_FIELDS, _Rule

_F_LIM = 2**52
_I_LIM = 2**61
_NS_F = 1e9


class NoVec(Exception):
    """This window cannot be checked exactly with numpy: use the tick-by-tick path."""


_INT_FIELDS = ("ts_event", "ts_recv", "seq")  # the rest of the numeric fields are floats


class Window:
    """The numeric columns of a run of ticks (one kind, one symbol), cut at the first
    null of a field the rules, the quality counts or the state read."""

    __slots__ = ("raw", "arr", "n")

    def __init__(self, raw: dict[str, list], arr: dict[str, np.ndarray], n: int) -> None:
        self.raw = raw
        self.arr = arr
        self.n = n

    def num(self, f: str) -> np.ndarray:
        if f == "latency_s":
            a = self.arr.get(f)
            if a is None:
                d = self.arr["ts_recv"] - self.arr["ts_event"]
                if not np.abs(d).max() <= 2**53:
                    raise NoVec
                a = self.arr[f] = d / _NS_F
            return a
        return self.arr[f]


def _column(col: list, code: str) -> tuple[np.ndarray, int | None]:
    """``(array, index of the first None or None)``; NoVec for any other value that
    is not a number of the field's type (int fields: int or bool; float fields:
    anything ``float()`` takes, see the module doc)."""
    try:
        return np.frombuffer(array(code, col), _DTYPES[code]), None
    except OverflowError:
        raise NoVec from None
    except TypeError:
        if None not in col:
            raise NoVec from None
    k = col.index(None)
    try:
        return np.frombuffer(array(code, col[:k]), _DTYPES[code]), k
    except (OverflowError, TypeError):
        raise NoVec from None


_DTYPES = {"d": np.float64, "q": np.int64}


def _seed(a: np.ndarray, seed: Any, lim: int) -> Any:
    """A state value usable as element -1 of column ``a``, or NoVec."""
    if seed is None:
        return None
    ts = type(seed)
    if a.dtype.kind == "f":
        if ts is float or (ts is int and -_F_LIM <= seed <= _F_LIM):
            return seed
    elif ts is int and -lim <= seed <= lim:
        return seed
    raise NoVec


def _shift(a: np.ndarray, seed: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``prev[i] = a[i-1]`` (``prev[0] = seed``) and the mask of where prev exists
    (None: everywhere)."""
    prev = np.empty_like(a)
    prev[1:] = a[:-1]
    if seed is None:
        prev[0] = 0
        has = np.ones(len(a), dtype=bool)
        has[0] = False
        return prev, has
    prev[0] = seed
    return prev, None


def _cmp_const(a: np.ndarray, op: str, k: float) -> np.ndarray:
    """``a op k`` elementwise, with Python's exact int/float semantics."""
    if a.dtype.kind == "i":
        if math.isnan(k):
            return np.zeros(len(a), dtype=bool)
        if math.isinf(k):
            return np.full(len(a), (k > 0) == (op[0] == "<"))
        b = math.floor(k) if op in (">", "<=") else math.ceil(k)
        k = max(-_I_LIM - 1, min(_I_LIM + 1, b))
    if op == ">":
        return a > k
    if op == ">=":
        return a >= k
    if op == "<":
        return a < k
    return a <= k


def _cmp_cols(a: np.ndarray, op: str, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind != b.dtype.kind:
        for x in (a, b):  # the int one must convert exactly
            if x.dtype.kind == "i" and not np.abs(x).max() <= 2**53:
                raise NoVec
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    return a <= b


_Eval = Callable[[Window, Any], np.ndarray]


def _condition(c: dict) -> tuple[_Eval, set[str]] | None:
    """``(evaluate(window, state) -> fires mask, fields it reads)``, or None when the
    condition has no vector form."""
    op, f = c["operator"], c["field"]
    if f not in TICK_FIELDS and f != "latency_s":
        return None
    fields = {"ts_event", "ts_recv"} if f == "latency_s" else {f}
    negate = bool(c.get("negate", False))
    ev: _Eval
    if op in ("greater_than", "less_than"):
        sym = (">" if op == "greater_than" else "<") + ("=" if c.get("inclusive") else "")
        if "value_field" in c:
            g = c["value_field"]
            if g not in TICK_FIELDS and g != "latency_s":
                return None
            fields |= {"ts_event", "ts_recv"} if g == "latency_s" else {g}

            def ev(w, st, _f=f, _g=g, _s=sym):
                return _cmp_cols(w.num(_f), _s, w.num(_g))
        else:
            k = float(c["value"])

            def ev(w, st, _f=f, _s=sym, _k=k):
                return _cmp_const(w.num(_f), _s, _k)
    elif op == "between":
        lo, hi = float(c["value"][0]), float(c["value"][1])

        def ev(w, st, _f=f, _lo=lo, _hi=hi):
            a = w.num(_f)
            return _cmp_const(a, ">=", _lo) & _cmp_const(a, "<=", _hi)
    elif op == "is_null":  # the window holds no nulls in the fields read
        def ev(w, st):
            return np.zeros(w.n, dtype=bool)
    elif op == "not_null":
        def ev(w, st):
            return np.ones(w.n, dtype=bool)
    elif op == "max_jump_pct":
        p = float(c["value"])

        def ev(w, st, _f=f, _p=p):
            a = w.num(_f)
            if a.dtype.kind == "i" and not np.abs(a).max() <= _F_LIM:
                raise NoVec
            prev, _ = _shift(a, _seed(a, st.good.get(_f), _F_LIM))  # no seed -> prev 0: never fires
            with np.errstate(all="ignore"):
                jump = np.abs(a - prev) / np.abs(prev) * 100.0
            return (prev != 0) & (jump > _p)
    elif op == "stale_for":
        limit = int(float(c["value"]) * 1_000_000_000)
        if c.get("reference", "recv") == "recv":
            def ev(w, st, _l=limit):
                d = w.num("ts_recv") - w.num("ts_event")  # int64 columns, no overflow
                return d > max(-_I_LIM * 2 - 1, min(_I_LIM * 2 + 1, _l))
            fields = {"ts_event", "ts_recv"}
        else:
            def ev(w, st, _l=limit):
                a = w.num("ts_event")
                if a.dtype.kind != "i":
                    raise NoVec
                prev, has = _shift(a, _seed(a, st.last.get("ts_event"), _I_LIM))
                fires = a - prev > max(-_I_LIM * 2 - 1, min(_I_LIM * 2 + 1, _l))
                return fires if has is None else fires & has
            fields = {"ts_event"}
    elif op == "out_of_order":
        allow_equal = bool(c.get("allow_equal", f != "seq"))

        def ev(w, st, _f=f, _eq=allow_equal):
            a = w.num(_f)
            prev, has = _shift(a, _seed(a, st.last.get(_f), _I_LIM))
            fires = (a < prev) if _eq else (a <= prev)
            return fires if has is None else fires & has
    else:
        return None
    if negate:
        inner = ev

        def ev(w, st, _i=inner):  # noqa: F811
            return ~_i(w, st)
    return ev, fields


class Plan:
    """The vector precheck of one kind's rules."""

    def __init__(self, rules: list, numeric: set[str], presence: set[str]) -> None:
        self.rules = rules  # [(symbols | None, match, [evaluators])]
        self.numeric = tuple(sorted(numeric))
        self.presence = tuple(sorted(presence - numeric))
        self.fields = self.numeric + self.presence
        src = ("def extract(ticks):\n    return ("
               + "".join(f"[t.{f} for t in ticks], " for f in self.fields) + ")\n")
        ns: dict[str, Any] = {}
        exec(compile(src, "<ticktide validation columns>", "exec"), ns)  # noqa: S102
        self.extract = ns["extract"]

    def prefix(self, ticks: list, symbol: str, st) -> tuple[int, Window]:
        """How many leading ``ticks`` (all of this kind and symbol) no rule fires on,
        given the state ``st`` before them; NoVec if numpy cannot tell exactly."""
        n = len(ticks)
        raw = dict(zip(self.fields, self.extract(ticks)))
        arr = {}
        for f in self.numeric:
            a, k = _column(raw[f], "q" if f in _INT_FIELDS else "d")
            if k is not None and k < n:
                n = k
            arr[f] = a
        for f in self.presence:
            col = raw[f]
            try:
                has_null = None in set(col)
            except TypeError:  # unhashable values
                has_null = None in col
            if has_null:
                n = min(n, col.index(None))
        if n == 0:
            return 0, Window(raw, arr, 0)
        for f, a in arr.items():
            if len(a) != n:
                arr[f] = a[:n]
        return self.judge(arr, n, symbol, st), Window(raw, arr, n)

    def judge(self, arr: dict[str, np.ndarray], n: int, symbol: str, st) -> int:
        """How many leading rows of the columns ``arr`` (``n`` rows of this kind and
        symbol, no nulls) no rule fires on; NoVec if numpy cannot tell exactly."""
        for f, a in arr.items():
            if f in _INT_FIELDS:
                if not (-_I_LIM <= a.min() and a.max() <= _I_LIM):
                    raise NoVec
            elif not np.abs(a).max() <= _F_LIM:
                raise NoVec
        w = Window({}, arr, n)
        fires = None
        for symbols, match, evs in self.rules:
            if symbols is not None and symbol not in symbols:
                continue
            r = None
            for ev in evs:
                x = ev(w, st)
                r = x if r is None else (r & x if match == "all" else r | x)
            fires = r if fires is None else fires | r
        if fires is not None:
            hit = int(fires.argmax())
            if fires[hit]:
                return hit
        return n


def compile_plan(rules: list[_Rule], required: tuple[str, ...], ordered: tuple[str, ...],
                 tracked: tuple[str, ...]) -> Plan | None:
    """The vector plan for one kind, or None if a condition has no vector form."""
    presence = set(required) | set(ordered) | set(tracked) | {"ts_recv"}
    numeric: set[str] = set()
    out = []
    for rule in rules:
        evs = []
        for c in rule.conditions:
            got = _condition(c)
            if got is None:
                return None
            evs.append(got[0])
            (presence if c["operator"] in ("is_null", "not_null") else numeric).update(got[1])
        out.append((rule.symbols, rule.match, evs))
    return Plan(out, numeric, presence)
