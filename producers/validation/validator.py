"""Declarative, stateful tick validation (pure: no I/O, no metrics library).

Rules live in TOML (``producers/validation/default.toml`` documents the format).
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

Layout: the rules-file model, compiled checks, state and result types are in
:mod:`producers.validation.rules`; the generated per-tick fast paths in
:mod:`producers.validation.codegen`; the numpy precheck of ``validate_many``
in :mod:`producers.validation.vector`; the :class:`Validator` here. Every
public name is importable from this module, as before.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from producers.validation.codegen import _fast_body, _generate_fast, _generate_many
from producers.validation.rules import (  # noqa: F401 - re-exported
    _NS, KINDS, OPERATORS, SEVERITIES, TICK_FIELDS, VIRTUAL_FIELDS, Flag, RuleError,
    SymbolQuality, Verdict, _compile_condition, _compile_rule, _Counts, _Rule, _State,
)
from producers.validation.vector import NoVec, Plan, compile_plan
from schemas.events import Tick

DEFAULT_RULES = Path(__file__).with_name("default.toml")

_MIN_VEC = 32  # shorter runs of one kind and symbol go tick by tick
_MAX_WIN = 4096  # ticks per vector precheck
_SCALAR_STRETCH = 256  # ticks done tick by tick after a short vector prefix

# --------------------------------------------------------------------------- validator

class Validator:
    def __init__(self, config: dict | None = None, *, fast: bool = True, vector: bool = True) -> None:
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
        plans = {
            k: compile_plan(self._rules[k], self._required[k], self._ordered[k], self._tracked[k])
            for k in KINDS
        } if vector else {}
        self._plans = {k: p for k, p in plans.items() if p is not None}

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

        Runs of at least ``_MIN_VEC`` ticks of one kind and symbol are prechecked with
        numpy (:mod:`producers.validation.vector`): the leading ticks no rule fires on
        are accepted in one step, and the generated tick-by-tick path takes over from
        the first tick a rule fires on (or that the precheck cannot judge exactly).
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
        if type(ticks) is not list:
            ticks = list(ticks)
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

        n = len(ticks)
        many = self._many
        states, counts = self._states, self._counts
        if n < _MIN_VEC or not self._plans:
            many(ticks, 0, n, states, counts, out, slow)
            return out
        kinds = [t.kind for t in ticks]
        syms = [t.symbol for t in ticks]
        pos = 0
        while pos < n:
            k, s = kinds[pos], syms[pos]
            if pos == 0 and kinds.count(k) == n and syms.count(s) == n:
                end = n  # the usual batch: one stream
            else:
                end = pos + 1
                while end < n and kinds[end] == k and syms[end] == s:
                    end += 1
            plan = self._plans.get(k) if k in KINDS else None
            if plan is None or end - pos < _MIN_VEC:
                many(ticks, pos, end, states, counts, out, slow)
            else:
                self._vector_run(ticks, pos, end, k, s, plan, out, slow)
            pos = end
        return out

    def _vector_run(self, ticks: list, pos: int, end: int, kind: str, symbol: str,
                    plan: Plan, out: list, slow) -> None:
        """``ticks[pos:end]`` (one kind and symbol): bulk-accept what the vector precheck
        passes, the rest tick by tick."""
        st, c = self._state_and_counts(kind, symbol)
        many, states, counts = self._many, self._states, self._counts
        win = _MAX_WIN
        while pos < end:
            stop = min(end, pos + win)
            if stop - pos < _MIN_VEC:
                many(ticks, pos, end, states, counts, out, slow)
                return
            try:
                sub = ticks[pos:stop]
                m, w = plan.prefix(sub, symbol, st)
            except NoVec:
                m = 0
            if m:
                raw = w.raw
                self._accept_bulk(kind, st, c, m, lambda f: raw[f][m - 1])
                out.extend(sub if m == len(sub) else sub[:m])
                pos += m
                if pos == stop:
                    continue
            # ticks[pos]: a rule fires (or a null, or a value numpy cannot judge exactly)
            stretch = 1 if m >= 64 else _SCALAR_STRETCH
            e2 = min(end, pos + stretch)
            many(ticks, pos, e2, states, counts, out, slow)
            pos = e2
            win = min(_MAX_WIN, max(4 * _MIN_VEC, 2 * m))

    def _accept_bulk(self, kind: str, st: _State, c: _Counts, m: int, last_value) -> None:
        """Leave state and counts as ``validate`` does after accepting ``m`` ticks no rule
        fired on and with every required field present; ``last_value(field)`` is the
        field's value in the last of them."""
        recv = last_value("ts_recv")
        c.total += m
        c.complete += m
        c.accepted += m
        c.last_recv = recv
        for f in self._ordered[kind]:
            st.last[f] = last_value(f)
        for f in self._tracked[kind]:
            st.good[f] = last_value(f)
            st.good_ts[f] = recv

    # -- columns (producers/fastpath/binance_scan.py gives them without Tick objects) ----------
    def column_prefix(self, kind: str, symbol: str, cols: dict, n: int, present: frozenset) -> int:
        """How many of ``n`` ticks of one kind and symbol, given as numpy columns ``cols``
        (int64 for ts_event/ts_recv/seq, float64 otherwise), ``validate`` would accept in
        order with no rule firing, from the current state; ``present`` names the other
        fields, non-null in every one of them. 0 when that cannot be told exactly (the
        caller then validates Ticks). Changes nothing."""
        plan = self._plans.get(kind)
        if plan is None or not self.use_fast or n == 0:
            return 0
        have = present | cols.keys()
        if not (have >= set(plan.fields) and have >= set(self._required[kind])
                and cols.keys() >= set(self._ordered[kind]) | set(self._tracked[kind]) | {"ts_recv"}):
            return 0
        st = self._states[kind].get(symbol) or _State()
        try:
            return plan.judge({f: cols[f] for f in plan.numeric}, n, symbol, st)
        except NoVec:
            return 0

    def accept_columns(self, kind: str, symbol: str, cols: dict, m: int) -> None:
        """Accept the first ``m`` rows of ``cols`` (``column_prefix`` said no rule fires
        on them): state and quality counts end up as ``validate`` leaves them."""
        if m <= 0:
            return
        st, c = self._state_and_counts(kind, symbol)
        self._accept_bulk(kind, st, c, m, lambda f: cols[f][m - 1].item())

    def _state_and_counts(self, kind: str, symbol: str) -> tuple[_State, _Counts]:
        st = self._states[kind].get(symbol)
        if st is None:
            st = self._states[kind][symbol] = _State()
        c = self._counts.get(symbol)
        if c is None:
            c = self._counts[symbol] = _Counts()
        return st, c

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
