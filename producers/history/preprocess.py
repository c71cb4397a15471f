"""Declarative preprocessing of historical bars with the tick validator's rules engine.

Rules (``rules/default.toml`` documents them) are in the validator's TOML
format and every condition is compiled by the validator's own compiler
(:func:`producers.validation.compile_condition`, the reference semantics:
comparisons with a missing value never fire, ``max_jump_pct`` compares with
the last kept row, ``negate``, ``value_field``) over the bar's fields. Rows
run through the rules in date order like ticks through the validator, with a
:class:`producers.validation.RuleState` per symbol. What differs is what a
history allows: ``fill`` may interpolate linearly between the neighbouring
rows (a stream can only fill forward), done once all rows have been seen.
Per symbol the result has the clean bars, every flag (date, rule, severity,
message) and counts; :func:`quality` turns the counts of the symbols fetched
together into completeness and accuracy against the thresholds.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from producers.history.base import BAR_COLUMNS
from producers.validation import SEVERITIES, RuleError, RuleState, compile_condition
from producers.validation.rules import combine_checks

DEFAULT_RULES = Path(__file__).with_name("rules") / "default.toml"
# stale_for and out_of_order need event/receive times and arrival order: a sorted history has neither
BAR_OPERATORS = ("greater_than", "less_than", "between", "is_null", "not_null", "max_jump_pct")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

Check = Callable[[Any, RuleState], "str | None"]


def _num(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise RuleError(f"{where}: value must be a number, got {value!r}")
    return float(value)


class _Row:
    """One bar as the compiled checks read it (attributes, None when missing); reused row after row."""

    __slots__ = BAR_COLUMNS


@dataclass
class _BarRule:
    name: str
    check: Check
    tracked: set[str]
    actions: list[tuple[str, str, dict]]


def compile_rules(config: dict) -> list[_BarRule]:
    rules = []
    for i, r in enumerate(config.get("rules", [])):
        name = r.get("name") or f"rule{i}"
        where = f"rule {name!r}"
        conds = r.get("conditions")
        if not isinstance(conds, list) or not conds:
            raise RuleError(f"{where}: needs at least one condition")
        checks, tracked = [], set()
        for j, c in enumerate(conds):
            if isinstance(c, dict) and c.get("operator") not in BAR_OPERATORS:
                raise RuleError(f"{where} condition {j}: operator {c.get('operator')!r} does not apply to bars "
                                f"(operators: {', '.join(BAR_OPERATORS)})")
            check, tr = compile_condition(c, f"{where} condition {j}", BAR_COLUMNS)
            checks.append(check)
            tracked |= tr
        match = r.get("match", "all")
        if match not in ("all", "any"):
            raise RuleError(f"{where}: match must be 'all' or 'any'")
        actions = []
        for a in r.get("actions") or []:
            typ = a.get("type")
            sev = a.get("severity", "critical" if typ == "reject" else "warning")
            if sev not in SEVERITIES:
                raise RuleError(f"{where}: unknown severity {sev!r}")
            if typ == "fill":
                if a.get("field") not in BAR_COLUMNS:
                    raise RuleError(f"{where}: fill needs a bar field ({', '.join(BAR_COLUMNS)}), got {a.get('field')!r}")
                if a.get("method", "interpolate") not in ("interpolate", "last", "value"):
                    raise RuleError(f"{where}: fill method must be 'interpolate', 'last' or 'value'")
                if a.get("method") == "value":
                    _num(a.get("value"), where)
            elif typ not in ("flag", "reject"):
                raise RuleError(f"{where}: unknown action {typ!r} (flag, reject, fill)")
            actions.append((typ, sev, a))
        if not actions:
            raise RuleError(f"{where}: needs at least one action")
        rules.append(_BarRule(name, combine_checks(checks, match), tracked, actions))
    return rules


@dataclass
class Preprocessed:
    symbol: str
    bars: pd.DataFrame
    flags: list[dict] = field(default_factory=list)  # {date, rule, severity, message}
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    filled: int = 0
    rejected: int = 0
    failing: int = 0  # rows kept with a flag of severity warning or above

    @property
    def rows(self) -> int:
        return int(len(self.bars))


class BarRules:
    def __init__(self, config: dict | None = None) -> None:
        if config is None:
            config = tomllib.loads(DEFAULT_RULES.read_text())
        self.config = config
        bars = config.get("bars", {})
        self.sort = bool(bars.get("sort", True))
        self.keep = bars.get("duplicates", "last")
        if self.keep not in ("last", "first"):
            raise RuleError("bars.duplicates must be 'last' or 'first'")
        self.rules = compile_rules(config)
        th = config.get("quality_thresholds", {}).get("default", {})
        self.thresholds = {"completeness": float(th.get("completeness", 0.95)),
                           "accuracy": float(th.get("accuracy", 0.90))}

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> "BarRules":
        try:
            return cls(tomllib.loads(Path(path or DEFAULT_RULES).read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise RuleError(f"{path}: {exc}") from None

    def apply(self, symbol: str, raw: pd.DataFrame) -> Preprocessed:
        df = raw.reindex(columns=list(BAR_COLUMNS)).astype("float64")
        out = Preprocessed(symbol, df, received=len(df))
        idx = df.index
        out.out_of_order = int((np.diff(idx.asi8) < 0).sum()) if len(idx) > 1 else 0
        if self.sort:
            df = df.sort_index(kind="stable")
        dup = df.index.duplicated(keep=self.keep)
        out.duplicates = int(dup.sum())
        df = df[~dup].copy()
        provided = {c for c in BAR_COLUMNS if df[c].notna().any()}  # a column the source gives at all
        tracked = sorted(set().union(*(r.tracked for r in self.rules))) if self.rules else []
        st = RuleState()
        dates = [d.date().isoformat() for d in df.index]
        keep = np.ones(len(df), dtype=bool)
        worst = np.full(len(df), -1)
        fills: dict[str, list[tuple[int, str, dict, str]]] = {}  # field -> (row, rule, spec, severity)
        columns = [[None if v != v else v for v in df[c].tolist()] for c in BAR_COLUMNS]  # NaN -> None: missing
        bar = _Row()
        for i, values in enumerate(zip(*columns)):
            bar.open, bar.high, bar.low, bar.close, bar.adj_close, bar.volume = values
            for rule in self.rules:
                message = rule.check(bar, st)
                if message is None:
                    continue
                rejected = False
                for typ, sev, spec in rule.actions:
                    if typ == "reject":
                        out.flags.append({"date": dates[i], "rule": rule.name, "severity": sev,
                                          "message": f"rejected: {message}"})
                        keep[i], rejected = False, True
                        break
                    if typ == "fill":
                        if spec["field"] in provided:
                            fills.setdefault(spec["field"], []).append((i, rule.name, spec, sev))
                        continue
                    out.flags.append({"date": dates[i], "rule": rule.name, "severity": sev, "message": message})
                    worst[i] = max(worst[i], _RANK[sev])
                if rejected:
                    break
            if keep[i]:
                for f in tracked:
                    v = getattr(bar, f)
                    if v is not None:
                        st.good[f] = v
        for f, todo in fills.items():  # interpolation needs the rows after: done once all are seen
            col = df[f].where(keep)
            candidates: dict[tuple, pd.Series] = {}
            for i, name, spec, sev in todo:
                if not keep[i]:
                    continue
                method = spec.get("method", "interpolate")
                key = (method, spec.get("value"))
                if key not in candidates:
                    candidates[key] = (col.interpolate(method="linear", limit_area="inside") if method == "interpolate"
                                       else col.ffill() if method == "last" else col.fillna(float(spec["value"])))
                value = candidates[key].iloc[i]
                if value != value:
                    keep[i] = False
                    out.flags.append({"date": dates[i], "rule": name, "severity": "critical",
                                      "message": f"{f} missing with nothing to fill from"})
                    continue
                df.iat[i, df.columns.get_loc(f)] = value
                out.filled += 1
                out.flags.append({"date": dates[i], "rule": name, "severity": sev, "message": f"{f} filled ({method})"})
                worst[i] = max(worst[i], _RANK[sev])
        out.rejected = int((~keep).sum())
        out.failing = int((worst[keep] >= _RANK["warning"]).sum())
        out.bars = df[keep]
        return out


def quality(done: dict[str, Preprocessed], start: dt.date, end: dt.date, thresholds: dict[str, float],
            calendar: pd.DatetimeIndex | None = None) -> dict[str, dict]:
    """Per symbol: completeness (rows / days of the union calendar in [start, end]), accuracy
    (rows passing validation / rows), and which thresholds they fall below."""
    t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)

    def inside(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
        return index[(index >= t0) & (index < t1)]
    if calendar is None:
        calendar = pd.DatetimeIndex([], tz="UTC")
        for p in done.values():
            calendar = calendar.union(inside(p.bars.index))
    days = max(1, len(inside(calendar)))
    out = {}
    for sym, p in done.items():
        rows = len(inside(p.bars.index))
        completeness = rows / days
        accuracy = (p.rows - p.failing) / p.rows if p.rows else 0.0
        breaches = [name for name, value in (("completeness", completeness), ("accuracy", accuracy))
                    if value < thresholds[name]]
        out[sym] = {"completeness": round(completeness, 6), "accuracy": round(accuracy, 6),
                    "rows": rows, "expected_rows": days, "received": p.received, "duplicates": p.duplicates,
                    "out_of_order": p.out_of_order, "filled": p.filled, "rejected": p.rejected,
                    "flagged": p.failing, "breaches": breaches, "thresholds": dict(thresholds)}
    return out
