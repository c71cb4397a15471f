"""Built-in signal rules: pure functions of one symbol's feature values and a small state.

Every rule looks at the ``values`` of one FeatureVector (feature name ->
float or None, ``None`` until a window is full), the vector's price, and a
per-symbol ``state`` dict it may update (for crossings: the previous value).
It returns a :class:`SignalHit` or ``None``. No clock, no I/O: the engine
(``consumers.signals.engine``) applies cooldowns and builds Signal events.

Rules and what they say
-----------------------
``price_movement``  ``|return_n| > k * volatility_w``. Action ``review``
    (``consider_trade`` when urgency is high); strength = ``|return_n| /
    (k * volatility_w)`` (>= 1 when it fires); urgency ``low`` below 1.5,
    ``medium`` below 2, else ``high``. ``volatility_w`` is compared as
    published (the std of per-input returns), without horizon scaling.
``volume_spike``    ``volume_ratio_n > m``. Action ``review``; strength =
    ``ratio / m``; urgency as above.
``rsi``             RSI crossing the levels: from above ``oversold`` to at or
    below it -> ``buy`` (oversold); from below ``overbought`` to at or above
    it -> ``sell`` (overbought). Urgency ``medium``; strength = distance past
    the level in RSI points / 10 (+ 1), so a deeper cross is stronger.
``macd``            ``macd - macd_signal`` changing sign: up -> ``buy``, down
    -> ``sell``. Urgency ``low``; strength = ``|macd - macd_signal| / price``
    in basis points.
``breakout``        price above the *previous* vector's ``resistance_n`` ->
    ``buy``; below the previous ``support_n`` -> ``sell`` (the previous value,
    because a rolling max that includes the current price can never be
    exceeded). With several windows the longest one broken is reported;
    urgency ``high`` for the longest configured window, ``medium`` for the
    next, ``low`` otherwise; strength = distance past the level in percent.

No rule fires on a feature's first valid value (the end of its warm-up): a
crossing needs two consecutive vectors with values, and the threshold rules
(``price_movement``, ``volume_spike``) need their inputs valid on the
previous vector too (a ``None`` in between resets both). State is only
JSON-able numbers and flags so it snapshots exactly.
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol

import numpy as np

from consumers.signals.config import (
    BreakoutConfig, MacdConfig, PriceMovementConfig, RsiConfig, RulesConfig, VolumeSpikeConfig,
)
from consumers.signals.plugins import SignalHit

Values = Mapping[str, float | None]


def _num(values: Values, name: str) -> float | None:
    v = values.get(name)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def grade(strength: float) -> str:
    """Urgency from a strength that is >= 1 when the rule fires."""
    if strength >= 2.0:
        return "high"
    if strength >= 1.5:
        return "medium"
    return "low"


def crossings(series: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """+1 where ``series`` crosses up through ``level`` (prev < level <= cur), -1 down, else 0.

    The array form of the crossing test the rules apply one vector at a time;
    NaN on either side is no crossing. ``level`` may be a scalar or an array.
    """
    s = np.asarray(series, dtype=float)
    lv = np.broadcast_to(np.asarray(level, dtype=float), s.shape)
    out = np.zeros(s.shape, dtype=np.int8)
    if s.size >= 2:
        with np.errstate(invalid="ignore"):
            out[1:] = crossed(s[:-1], s[1:], lv[1:], lv[:-1])
    return out


def crossed(prev: np.ndarray, cur: np.ndarray, level, level_prev=None) -> np.ndarray:
    """``crossings`` for explicit (previous, current) pairs: +1 up (prev < level <= cur), -1 down
    (prev > level >= cur), else 0 (NaN on either side too). ``level_prev`` defaults to ``level``."""
    lp = level if level_prev is None else level_prev
    out = np.zeros(np.shape(cur), dtype=np.int8)
    out[(prev < lp) & (cur >= level)] = 1
    out[(prev > lp) & (cur <= level)] = -1
    return out


class Rule(Protocol):
    name: str
    cooldown_s: float | None

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None: ...


class PriceMovement:
    name = "price_movement"

    def __init__(self, cfg: PriceMovementConfig) -> None:
        self.ret = f"return_{cfg.return_window}"
        self.vol = f"volatility_{cfg.volatility_window}"
        self.k = cfg.k
        self.cooldown_s = cfg.cooldown_s

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None:
        r, vol = _num(values, self.ret), _num(values, self.vol)
        valid = r is not None and vol is not None and vol > 0
        warm = state.get("warm", False)  # inputs valid on the previous vector: past the warm-up
        state["warm"] = valid
        if not (valid and warm) or abs(r) <= self.k * vol:
            return None
        return self.hit(r, vol)

    def hit(self, r: float, vol: float) -> SignalHit:
        """The signal of a move that fired (shared with the batch path, consumers.signals.batch_rules)."""
        threshold = self.k * vol
        strength = abs(r) / threshold
        urgency = grade(strength)
        direction = "up" if r > 0 else "down"
        return SignalHit(
            action="consider_trade" if urgency == "high" else "review", urgency=urgency, strength=strength,
            reason=(f"price moved {direction} {r:+.4%} over {self.ret}, {abs(r) / vol:.2f}x {self.vol} "
                    f"({vol:.4%}); threshold {self.k:g}x"),
            features={self.ret: r, self.vol: vol})


class VolumeSpike:
    name = "volume_spike"

    def __init__(self, cfg: VolumeSpikeConfig) -> None:
        self.ratio = f"volume_ratio_{cfg.window}"
        self.m = cfg.m
        self.cooldown_s = cfg.cooldown_s

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None:
        ratio = _num(values, self.ratio)
        warm = state.get("warm", False)  # valid on the previous vector: past the warm-up
        state["warm"] = ratio is not None
        if ratio is None or not warm or ratio <= self.m:
            return None
        return self.hit(ratio)

    def hit(self, ratio: float) -> SignalHit:
        strength = ratio / self.m
        return SignalHit(
            action="review", urgency=grade(strength), strength=strength,
            reason=f"volume spike: {self.ratio} = {ratio:.2f} (threshold {self.m:g})",
            features={self.ratio: ratio})


class RsiCross:
    name = "rsi"

    def __init__(self, cfg: RsiConfig) -> None:
        if not 0 < cfg.oversold < cfg.overbought < 100:
            raise ValueError("rsi levels must satisfy 0 < oversold < overbought < 100")
        self.feature = f"rsi_{cfg.window}"
        self.low, self.high = cfg.oversold, cfg.overbought
        self.cooldown_s = cfg.cooldown_s

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None:
        cur = _num(values, self.feature)
        prev = state.get("prev")
        state["prev"] = cur
        if cur is None or prev is None:
            return None
        if prev > self.low >= cur:
            return self.oversold(prev, cur)
        if prev < self.high <= cur:
            return self.overbought(prev, cur)
        return None

    def oversold(self, prev: float, cur: float) -> SignalHit:
        return SignalHit(
            action="buy", urgency="medium", strength=1.0 + (self.low - cur) / 10.0,
            reason=f"{self.feature} crossed below {self.low:g} ({prev:.2f} -> {cur:.2f}): oversold",
            features={self.feature: cur, f"{self.feature}_prev": prev})

    def overbought(self, prev: float, cur: float) -> SignalHit:
        return SignalHit(
            action="sell", urgency="medium", strength=1.0 + (cur - self.high) / 10.0,
            reason=f"{self.feature} crossed above {self.high:g} ({prev:.2f} -> {cur:.2f}): overbought",
            features={self.feature: cur, f"{self.feature}_prev": prev})


class MacdCross:
    name = "macd"

    def __init__(self, cfg: MacdConfig) -> None:
        self.cooldown_s = cfg.cooldown_s

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None:
        macd, sig = _num(values, "macd"), _num(values, "macd_signal")
        cur = None if macd is None or sig is None else macd - sig
        prev = state.get("prev")
        state["prev"] = cur
        if cur is None or prev is None:
            return None
        if prev <= 0 < cur or prev >= 0 > cur:
            return self.hit(macd, sig, price)
        return None

    def hit(self, macd: float, sig: float, price: float | None) -> SignalHit:
        """The signal of a crossing (up when ``macd > sig``, the sign of the new difference)."""
        cur = macd - sig
        ref = abs(price) if price else max(abs(macd), abs(sig), 1e-12)
        strength = abs(cur) / ref * 1e4
        feats = {"macd": macd, "macd_signal": sig}
        if cur > 0:
            return SignalHit(action="buy", urgency="low", strength=strength, features=feats,
                             reason=f"MACD crossed above its signal line ({macd:.6g} > {sig:.6g})")
        return SignalHit(action="sell", urgency="low", strength=strength, features=feats,
                         reason=f"MACD crossed below its signal line ({macd:.6g} < {sig:.6g})")


class Breakout:
    name = "breakout"

    def __init__(self, cfg: BreakoutConfig) -> None:
        if not cfg.windows:
            raise ValueError("breakout needs at least one window")
        self.windows = sorted(set(cfg.windows), reverse=True)  # longest first
        # the features the rule remembers, in the order of its state
        self.levels = [f"{kind}_{n}" for n in self.windows for kind in ("resistance", "support")]
        self.cooldown_s = cfg.cooldown_s

    def _urgency(self, i: int) -> str:
        return ("high", "medium")[i] if i < 2 else "low"

    def evaluate(self, values: Values, price: float | None, state: dict) -> SignalHit | None:
        prev = dict(state.get("prev") or {})
        hit = None
        if price is not None and math.isfinite(price):
            for i, n in enumerate(self.windows):
                res, sup = prev.get(f"resistance_{n}"), prev.get(f"support_{n}")
                if res is not None and price > res:
                    hit = self.breakout(i, price, res)
                    break
                if sup is not None and price < sup:
                    hit = self.breakdown(i, price, sup)
                    break
        state["prev"] = {name: _num(values, name) for name in self.levels}
        return hit

    def breakout(self, i: int, price: float, res: float) -> SignalHit:
        """Price above the previous resistance of ``self.windows[i]``."""
        n = self.windows[i]
        return SignalHit(
            action="buy", urgency=self._urgency(i), strength=(price / res - 1.0) * 100.0,
            reason=f"breakout: price {price:.6g} above {n}-period resistance {res:.6g}",
            features={"price": price, f"resistance_{n}": res})

    def breakdown(self, i: int, price: float, sup: float) -> SignalHit:
        n = self.windows[i]
        return SignalHit(
            action="sell", urgency=self._urgency(i), strength=(1.0 - price / sup) * 100.0,
            reason=f"breakdown: price {price:.6g} below {n}-period support {sup:.6g}",
            features={"price": price, f"support_{n}": sup})


def build_rules(cfg: RulesConfig) -> list[Rule]:
    """The enabled built-in rules, in a fixed order (the order signals are emitted in)."""
    rules: list[Rule] = []
    if cfg.price_movement.enabled:
        rules.append(PriceMovement(cfg.price_movement))
    if cfg.volume_spike.enabled:
        rules.append(VolumeSpike(cfg.volume_spike))
    if cfg.rsi.enabled:
        rules.append(RsiCross(cfg.rsi))
    if cfg.macd.enabled:
        rules.append(MacdCross(cfg.macd))
    if cfg.breakout.enabled:
        rules.append(Breakout(cfg.breakout))
    return rules
