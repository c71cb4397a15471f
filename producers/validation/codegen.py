"""The generated fast paths of :class:`producers.validation.Validator`.

The rule conditions are turned into Python source (one boolean expression per
rule) and compiled with ``exec``: ``fast(t, st, c)`` for one tick, ``many(...)``
for a batch. The precheck must fire exactly when one of the rules does; the
rule loop (``Validator._rule_loop``) does the rest."""

from __future__ import annotations

import re
from itertools import islice
from typing import Any, Callable

from producers.validation.rules import TICK_FIELDS, _NS, _Check, _Counts, _Rule, _State


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
    """Generate ``many(ticks, start, stop, states, counts, out, slow)``: the per-kind
    fast paths inlined in one loop over ``ticks[start:stop]`` (no call, no Verdict per accepted tick).
    Accepted ticks are appended to ``out``; a tick for which a rule fires goes to
    ``slow(i, tick, kind, st, c)`` (the rule loop), an unknown kind to
    ``slow(i, tick, kind, None, None)``."""
    lines = [
        "def many(ticks, start, stop, states, counts, out, slow):",
        "    append = out.append",
        "    cget = counts.get",
    ]
    for kind in bodies:
        lines.append(f"    states_{kind} = states[{kind!r}]")
    lines += [
        "    psym = None",
        "    c = None",
        "    for i, t in enumerate(islice(ticks, start, stop), start):",
        "        kind = t.kind",
        "        sym = t.symbol",
        "        if sym is not psym:",
        "            c = cget(sym)",
        "            psym = sym",
    ]
    ns: dict[str, Any] = {"_State": _State, "_Counts": _Counts, "islice": islice}
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
    return re.sub(rf"\b{re.escape(old)}\b", new, line)
