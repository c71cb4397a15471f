"""Example signal plug-ins: a class with parameters and state, and a plain function.

Enable them in a signals config (TOML)::

    [[plugins]]
    path = "examples.strategies.mean_reversion:MeanReversion"
    cooldown_s = 600
    params = { window = 21, threshold = 2.0 }

    [[plugins]]
    path = "examples.strategies.mean_reversion:trend_agreement"

and run ``ticktide signals --input features.jsonl --config that.toml`` or
``ticktide consume signals --config that.toml``.
"""

from __future__ import annotations

from consumers.signals.plugins import SignalHit
from schemas.events import FeatureVector


class MeanReversion:
    """Buy when the z-score leaves -threshold upwards (reverting), sell when it leaves +threshold downwards.

    Keeps the previous z-score in the engine-owned ``state`` dict, so it works
    per symbol and survives restarts.
    """

    name = "mean_reversion"

    def __init__(self, window: int = 21, threshold: float = 2.0) -> None:
        self.feature = f"zscore_{window}"
        self.threshold = float(threshold)

    def __call__(self, fv: FeatureVector, state: dict) -> SignalHit | None:
        z = fv.values.get(self.feature)
        prev = state.get("prev")
        state["prev"] = z
        if z is None or prev is None:
            return None
        t = self.threshold
        if prev < -t <= z:
            return SignalHit(action="buy", urgency="medium", strength=abs(prev) / t,
                             reason=f"{self.feature} back above -{t:g} ({prev:.2f} -> {z:.2f}): reverting up",
                             features={self.feature: z})
        if prev > t >= z:
            return SignalHit(action="sell", urgency="medium", strength=abs(prev) / t,
                             reason=f"{self.feature} back below {t:g} ({prev:.2f} -> {z:.2f}): reverting down",
                             features={self.feature: z})
        return None


def trend_agreement(fv: FeatureVector) -> SignalHit | None:
    """A stateless function: flag when the 5- and 21-period returns and MACD all point the same way."""
    v = fv.values
    r5, r21, macd, sig = v.get("return_5"), v.get("return_21"), v.get("macd"), v.get("macd_signal")
    if None in (r5, r21, macd, sig):
        return None
    if r5 > 0 and r21 > 0 and macd > sig:
        return SignalHit(action="consider_trade", urgency="low", strength=min(r5, r21) * 100,
                         reason="returns over 5 and 21 periods and MACD agree: uptrend",
                         features={"return_5": r5, "return_21": r21, "macd": macd, "macd_signal": sig})
    if r5 < 0 and r21 < 0 and macd < sig:
        return SignalHit(action="consider_trade", urgency="low", strength=-max(r5, r21) * 100,
                         reason="returns over 5 and 21 periods and MACD agree: downtrend",
                         features={"return_5": r5, "return_21": r21, "macd": macd, "macd_signal": sig})
    return None
