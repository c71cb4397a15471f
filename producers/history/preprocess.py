"""Declarative preprocessing of historical bars: the tick validator's TOML rule format, applied to whole frames.

Rules (``rules/default.toml`` documents them) use the validator's keys,
operators, actions and error type (:class:`producers.validation.RuleError`);
because a history arrives whole and sorted, conditions are evaluated on
columns at once and ``fill`` can interpolate (a stream can only fill
forward). Per symbol the result has the clean bars, every flag (date, rule,
severity, message) and counts; :func:`quality` turns the counts of the
symbols fetched together into completeness and accuracy against the
thresholds.
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
from producers.validation import SEVERITIES, RuleError

DEFAULT_RULES = Path(__file__).with_name("rules") / "default.toml"
BAR_OPERATORS = ("greater_than", "less_than", "between", "is_null", "not_null", "max_jump_pct")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

Mask = Callable[[pd.DataFrame], pd.Series]


def _field(name: Any, where: str) -> str:
    if name not in BAR_COLUMNS:
        raise RuleError(f"{where}: unknown field {name!r} (fields: {', '.join(BAR_COLUMNS)})")
    return name


def _num(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise RuleError(f"{where}: value must be a number, got {value!r}")
    return float(value)


def _condition(c: Any, where: str) -> Mask:
    if not isinstance(c, dict):
        raise RuleError(f"{where}: a condition must be a table")
    op = c.get("operator")
    if op not in BAR_OPERATORS:
        raise RuleError(f"{where}: operator {op!r} does not apply to bars (operators: {', '.join(BAR_OPERATORS)})")
    f = _field(c.get("field"), where)
    if op in ("greater_than", "less_than"):
        inclusive = bool(c.get("inclusive", False))
        other = _field(c["value_field"], where) if "value_field" in c else None
        value = None if other else _num(c.get("value"), where)

        def mask(df, _f=f, _o=other, _v=value, _op=op, _inc=inclusive):
            ref = df[_o] if _o else _v
            x = df[_f]
            m = (x >= ref if _inc else x > ref) if _op == "greater_than" else (x <= ref if _inc else x < ref)
            return m.fillna(False).astype(bool)  # a comparison with a missing value never fires
    elif op == "between":
        value = c.get("value")
        if not (isinstance(value, list) and len(value) == 2):
            raise RuleError(f"{where}: between needs value = [low, high]")
        lo, hi = _num(value[0], where), _num(value[1], where)

        def mask(df, _f=f, _lo=lo, _hi=hi):
            return df[_f].between(_lo, _hi).fillna(False)
    elif op == "is_null":
        def mask(df, _f=f):
            return df[_f].isna()
    elif op == "not_null":
        def mask(df, _f=f):
            return df[_f].notna()
    else:  # max_jump_pct against the previous row's value
        pct = _num(c.get("value"), where)

        def mask(df, _f=f, _p=pct):
            prev = df[_f].ffill().shift(1)
            return ((df[_f] - prev).abs() / prev.abs() * 100.0 > _p).fillna(False)
    if c.get("negate"):
        inner = mask

        def mask(df, _i=inner, _f=f):  # noqa: F811
            return ~_i(df) & df[_f].notna()
    return mask


@dataclass
class _BarRule:
    name: str
    mask: Mask
    actions: list[tuple[str, str, dict]]


def compile_rules(config: dict) -> list[_BarRule]:
    rules = []
    for i, r in enumerate(config.get("rules", [])):
        name = r.get("name") or f"rule{i}"
        where = f"rule {name!r}"
        conds = r.get("conditions")
        if not isinstance(conds, list) or not conds:
            raise RuleError(f"{where}: needs at least one condition")
        masks = [_condition(c, f"{where} condition {j}") for j, c in enumerate(conds)]
        match = r.get("match", "all")
        if match not in ("all", "any"):
            raise RuleError(f"{where}: match must be 'all' or 'any'")

        def combined(df, _ms=tuple(masks), _any=match == "any"):
            out = _ms[0](df)
            for m in _ms[1:]:
                out = (out | m(df)) if _any else (out & m(df))
            return out
        actions = []
        for a in r.get("actions") or []:
            typ = a.get("type")
            sev = a.get("severity", "critical" if typ == "reject" else "warning")
            if sev not in SEVERITIES:
                raise RuleError(f"{where}: unknown severity {sev!r}")
            if typ == "fill":
                _field(a.get("field"), where)
                if a.get("method", "interpolate") not in ("interpolate", "last", "value"):
                    raise RuleError(f"{where}: fill method must be 'interpolate', 'last' or 'value'")
                if a.get("method") == "value":
                    _num(a.get("value"), where)
            elif typ not in ("flag", "reject"):
                raise RuleError(f"{where}: unknown action {typ!r} (flag, reject, fill)")
            actions.append((typ, sev, a))
        if not actions:
            raise RuleError(f"{where}: needs at least one action")
        rules.append(_BarRule(name, combined, actions))
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
        worst = pd.Series(-1, index=df.index)
        drop = pd.Series(False, index=df.index)
        for rule in self.rules:
            # rows already rejected are not there for later rules (a jump compares with the last kept row)
            hit = rule.mask(df[~drop]).reindex(df.index, fill_value=False)
            if not hit.any():
                continue
            for typ, sev, spec in rule.actions:
                if typ == "fill":
                    f, method = spec["field"], spec.get("method", "interpolate")
                    col = df[f]
                    if col.isna().all():
                        continue  # the source does not provide this column
                    if method == "interpolate":
                        filled = col.interpolate(method="linear", limit_area="inside")
                    elif method == "last":
                        filled = col.ffill()
                    else:
                        filled = col.fillna(float(spec["value"]))
                    ok = hit & filled.notna()
                    df.loc[ok, f] = filled[ok]
                    out.filled += int(ok.sum())
                    unfillable = hit & ~ok
                    drop |= unfillable
                    self._flags(out, rule.name, sev, ok, f"{f} filled ({method})")
                    self._flags(out, rule.name, "critical", unfillable, f"{f} missing with nothing to fill from")
                    worst = worst.where(~ok, np.maximum(worst, _RANK[sev]))
                elif typ == "reject":
                    drop |= hit
                    self._flags(out, rule.name, sev, hit, "rejected")
                else:
                    self._flags(out, rule.name, sev, hit, "flagged")
                    worst = worst.where(~hit, np.maximum(worst, _RANK[sev]))
        out.rejected = int(drop.sum())
        kept = df[~drop]
        out.failing = int((worst[~drop] >= _RANK["warning"]).sum())
        out.bars = kept
        return out

    @staticmethod
    def _flags(out: Preprocessed, rule: str, severity: str, mask: pd.Series, message: str) -> None:
        for d in mask.index[mask.to_numpy()]:
            out.flags.append({"date": d.date().isoformat(), "rule": rule, "severity": severity, "message": message})


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
