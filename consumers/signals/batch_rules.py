"""The built-in rules over a batch of FeatureVectors: one numpy pass per rule.

Each ``*Arrays`` class wraps a rule of ``consumers.signals.rules`` and answers,
for every row of a batch at once, whether the rule fires, exactly as
``rule.evaluate`` would one vector at a time. The rows of a batch belong to
several symbols (groups); a rule's "previous value" is the previous row of
the same group, and for a group's first row the state the per-row rule left
behind (``state["prev"]`` / ``state["warm"]``). After the pass each group's
rule state is set to what the per-row rule would leave after the group's
last row, so snapshots are the same whichever path ran, and the two paths
can alternate.

Only *whether* a row fires is computed here; the SignalHit of a firing row
(strength, reason, features) is built by the rule's own method (``hit``,
``oversold``, ...), the one ``evaluate`` uses, so the texts cannot drift.

A value that is None, NaN or infinite counts as missing (``rules._num``):
it is NaN here, and every comparison with NaN is false, which is what the
per-row ``is None`` tests say.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Callable, Sequence

import numpy as np

from consumers.signals.plugins import SignalHit
from consumers.signals.rules import (
    Breakout, MacdCross, PriceMovement, Rule, RsiCross, VolumeSpike, crossed,
)
from schemas.events import FeatureVector

NAN = math.nan


class Rows:
    """One batch's vectors, grouped (``group[i]``: 0, 1, ... in order of first appearance), with
    the features the rules read as float columns (missing or non-finite: NaN)."""

    def __init__(self, events: Sequence[FeatureVector], group: list[int], features: Sequence[str]) -> None:
        n = len(events)
        self.group = np.asarray(group, dtype=np.intp)
        order = np.argsort(self.group, kind="stable")  # each group's rows together, in row order
        sorted_groups = self.group[order]
        first = np.empty(n, dtype=bool)  # in sorted order: the first row of its group
        first[0] = True
        np.not_equal(sorted_groups[1:], sorted_groups[:-1], out=first[1:])
        last = np.empty(n, dtype=bool)
        last[-1] = True
        last[:-1] = first[1:]
        previous = np.empty(n, dtype=np.intp)
        previous[order[1:]] = order[:-1]
        previous[order[first]] = 0  # a group's first row reads the state instead (has_previous False)
        self.has_previous = np.ones(n, dtype=bool)
        self.has_previous[order[first]] = False
        self.previous_row = previous
        # groups are numbered by first appearance, so sorted by group the last rows come in group order
        self.last_rows = order[last]
        self.columns = self._columns([e.values for e in events], features)
        # the price a rule sees: fv.price, falling back to values["mid"] (as SignalEngine.on_features)
        self.prices = [e.price if e.price is not None else e.values.get("mid") for e in events]
        self.price = self._finite(np.array(self.prices, dtype=np.float64))

    @staticmethod
    def _finite(x: np.ndarray) -> np.ndarray:
        x[~np.isfinite(x)] = NAN
        return x

    def _columns(self, values: list[dict], features: Sequence[str]) -> dict[str, np.ndarray]:
        if not features:
            return {}
        try:  # vectors from the features consumer carry every feature: one C call per row
            get = itemgetter(*features)
            table = [get(v) for v in values]
        except KeyError:
            table = [tuple(v.get(f) for f in features) for v in values]
        matrix = self._finite(np.array(table, dtype=np.float64).reshape(len(values), len(features)))
        return {f: matrix[:, j] for j, f in enumerate(features)}

    def previous(self, x: np.ndarray, seeds: Sequence) -> np.ndarray:
        """``x`` of the previous row of the same group; ``seeds[g]`` for a group's first row."""
        return np.where(self.has_previous, x[self.previous_row], np.asarray(seeds, dtype=x.dtype)[self.group])

    def last(self, x: np.ndarray) -> list:
        """Per group, ``x`` at its last row, as Python values (NaN -> None)."""
        return [None if v != v else v for v in x[self.last_rows].tolist()]


def _number(v) -> float:
    return NAN if v is None else float(v)


# What a rule says about a batch: which rows fire, and the SignalHit of a firing row.
Fired = tuple[np.ndarray, Callable[[int], SignalHit]]


def warmed_up(rows: Rows, valid: np.ndarray, states: list[dict]) -> np.ndarray:
    """The threshold rules' warm-up: ``valid`` on this row and on the previous one of its group
    (``state["warm"]`` before the batch); leaves ``state["warm"]`` as the per-row rule does."""
    warm = rows.previous(valid, [bool(st.get("warm", False)) for st in states])
    for st, v in zip(states, rows.last(valid)):
        st["warm"] = v
    return valid & warm


def carried(rows: Rows, cur: np.ndarray, states: list[dict]) -> np.ndarray:
    """The crossing rules' previous value (``state["prev"]`` before the batch); leaves
    ``state["prev"]`` as the per-row rule does."""
    prev = rows.previous(cur, [_number(st.get("prev")) for st in states])
    for st, v in zip(states, rows.last(cur)):
        st["prev"] = v
    return prev


class PriceMovementArrays:
    def __init__(self, rule: PriceMovement) -> None:
        self.rule = rule
        self.features = (rule.ret, rule.vol)

    def evaluate(self, rows: Rows, states: list[dict]) -> Fired:
        rule = self.rule
        r, vol = rows.columns[rule.ret], rows.columns[rule.vol]
        fires = warmed_up(rows, ~np.isnan(r) & (vol > 0), states) & (np.abs(r) > rule.k * vol)
        return fires, lambda i: rule.hit(float(r[i]), float(vol[i]))


class VolumeSpikeArrays:
    def __init__(self, rule: VolumeSpike) -> None:
        self.rule = rule
        self.features = (rule.ratio,)

    def evaluate(self, rows: Rows, states: list[dict]) -> Fired:
        rule = self.rule
        ratio = rows.columns[rule.ratio]
        fires = warmed_up(rows, ~np.isnan(ratio), states) & (ratio > rule.m)
        return fires, lambda i: rule.hit(float(ratio[i]))


class RsiArrays:
    def __init__(self, rule: RsiCross) -> None:
        self.rule = rule
        self.features = (rule.feature,)

    def evaluate(self, rows: Rows, states: list[dict]) -> Fired:
        rule = self.rule
        cur = rows.columns[rule.feature]
        prev = carried(rows, cur, states)
        down = crossed(prev, cur, rule.low) < 0  # from above `oversold` to at or below it
        up = crossed(prev, cur, rule.high) > 0  # from below `overbought` to at or above it

        def hit(i: int) -> SignalHit:
            p, c = float(prev[i]), float(cur[i])
            return rule.oversold(p, c) if down[i] else rule.overbought(p, c)
        return down | up, hit


class MacdArrays:
    def __init__(self, rule: MacdCross) -> None:
        self.rule = rule
        self.features = ("macd", "macd_signal")

    def evaluate(self, rows: Rows, states: list[dict]) -> Fired:
        rule = self.rule
        macd, sig = rows.columns["macd"], rows.columns["macd_signal"]
        with np.errstate(over="ignore"):  # finite values whose difference overflows: inf, as per row
            cur = macd - sig
        prev = carried(rows, cur, states)
        # the sign of macd - signal changes; unlike `crossed`, a zero counts on the old side
        fires = ((prev <= 0) & (cur > 0)) | ((prev >= 0) & (cur < 0))
        return fires, lambda i: rule.hit(float(macd[i]), float(sig[i]), rows.prices[i])


class BreakoutArrays:
    def __init__(self, rule: Breakout) -> None:
        self.rule = rule
        self.features = tuple(rule.levels)

    def evaluate(self, rows: Rows, states: list[dict]) -> Fired:
        rule = self.rule
        price = rows.price
        remembered = [st.get("prev") or {} for st in states]
        window = np.full(len(price), -1, dtype=np.intp)  # the window that broke, longest first
        up = np.zeros(len(price), dtype=bool)
        levels: dict[str, np.ndarray] = {}
        for i, n in enumerate(rule.windows):
            res = levels[f"resistance_{n}"] = self._previous(rows, remembered, f"resistance_{n}")
            sup = levels[f"support_{n}"] = self._previous(rows, remembered, f"support_{n}")
            above = price > res
            broke = (window < 0) & (above | (price < sup))
            window[broke] = i
            up[broke] = above[broke]  # above the resistance wins over below the support
        for st, last in zip(states, zip(*(rows.last(rows.columns[name]) for name in rule.levels))):
            st["prev"] = dict(zip(rule.levels, last))

        def hit(row: int) -> SignalHit:
            i = int(window[row])
            n = rule.windows[i]
            if up[row]:
                return rule.breakout(i, rows.prices[row], float(levels[f"resistance_{n}"][row]))
            return rule.breakdown(i, rows.prices[row], float(levels[f"support_{n}"][row]))
        return window >= 0, hit

    @staticmethod
    def _previous(rows: Rows, remembered: list[dict], name: str) -> np.ndarray:
        return rows.previous(rows.columns[name], [_number(prev.get(name)) for prev in remembered])


ARRAYS = {PriceMovement: PriceMovementArrays, VolumeSpike: VolumeSpikeArrays, RsiCross: RsiArrays,
          MacdCross: MacdArrays, Breakout: BreakoutArrays}


def array_rules(rules: Sequence[Rule]) -> list:
    """The batch form of each built-in rule, in the same order (the order signals come in)."""
    missing = [type(rule).__name__ for rule in rules if type(rule) not in ARRAYS]
    if missing:  # a new built-in rule needs its batch form here too (and the parity test proves it)
        raise TypeError(f"no batch form in consumers/signals/batch_rules.py for the rule(s) {missing}")
    return [ARRAYS[type(rule)](rule) for rule in rules]
