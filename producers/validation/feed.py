"""The feed's view of validation: a Validator (or a stand-in with the same few
methods) adapted to what ``producers.feed.connection.FeedConnection`` needs: a
``(tick | None, reason)`` per tick, a reset after a reconnect, and the
data-quality figures as plain dicts for the gauges and alerts.
"""

from __future__ import annotations

from typing import Any, Mapping

from schemas.events import Tick


class ValidatorBridge:
    """Adapts ``producers.validation.Validator`` (or a stand-in) to the feed.

    ``validate(tick)`` may answer a Verdict (``accepted``: Tick | None,
    ``rejected_reason``), a Tick, None, or a ``(tick | None, reason)`` tuple.
    """

    def __init__(self, validator: Any) -> None:
        self.validator = validator
        self._fn = validator.validate

    def __call__(self, tick: Tick) -> tuple[Tick | None, str | None]:
        out = self._fn(tick)
        if isinstance(out, Tick):
            return out, None
        if out is None:
            return None, "rejected"
        if isinstance(out, tuple):
            return out[0], out[1]
        accepted = getattr(out, "accepted", None)
        if accepted is None:
            return None, getattr(out, "rejected_reason", None) or "rejected"
        return accepted, None

    def reset(self) -> None:
        fn = getattr(self.validator, "reset", None)
        if fn is not None:
            fn()

    def quality(self) -> dict[str, dict[str, Any]]:
        """``{symbol: {"completeness", "validity", "thresholds", "breaches", "ready"}}``."""
        fn = getattr(self.validator, "quality", None)
        return normalize_quality(fn()) if fn is not None else {}


def normalize_quality(raw: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for symbol, q in (raw or {}).items():
        get = q.get if isinstance(q, Mapping) else (lambda k, d=None, _q=q: getattr(_q, k, d))
        vals: dict[str, Any] = {}
        for name in ("completeness", "validity"):
            v = get(name)
            if v is not None:
                vals[name] = float(v)
        vals["thresholds"] = dict(get("thresholds") or {})
        breaches = get("breaches")
        vals["breaches"] = None if breaches is None else set(breaches)
        vals["ready"] = bool(get("ready", True))
        out[str(symbol)] = vals
    return out
