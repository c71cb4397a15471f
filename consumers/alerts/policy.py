"""Which alerts get sent: deduplication and rate limiting. Pure; time is passed in (ns).

- ``Deduplicator``: an ``alert_id`` is sent at most once (replays of
  alerts.v1 after a restart are dropped), and alerts with the same
  *subject* — source, type, symbol and, when present, the ``limit``,
  ``component`` or ``scenario`` detail — are sent at most once per
  ``window_s``. Dropped alerts do not extend the window.
- ``RateLimiter``: a sliding window per destination; at most ``max_events``
  messages in any ``window_s``, so an alert storm sends a bounded number of
  messages. The number dropped since the last message sent is reported
  with the next one (``suppressed``).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from schemas.events import Alert


def subject(alert: Alert) -> str:
    d = alert.details or {}
    extra = "|".join(str(d.get(k, "")) for k in ("portfolio_id", "limit", "component", "scenario"))
    return f"{alert.source}|{alert.type}|{alert.symbol or ''}|{extra}"


class Deduplicator:
    def __init__(self, window_s: float, max_ids: int = 100_000) -> None:
        self.window_ns = int(window_s * 1e9)
        self.max_ids = max_ids
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._subjects: dict[str, int] = {}

    def admit(self, alert: Alert, now_ns: int) -> bool:
        if alert.alert_id in self._ids:
            return False
        self._ids[alert.alert_id] = None
        if len(self._ids) > self.max_ids:
            self._ids.popitem(last=False)
        key = subject(alert)
        last = self._subjects.get(key)
        if last is not None and now_ns - last < self.window_ns:
            return False
        self._subjects[key] = now_ns
        if len(self._subjects) > self.max_ids:  # forget expired subjects
            self._subjects = {k: t for k, t in self._subjects.items() if now_ns - t < self.window_ns}
        return True


class RateLimiter:
    def __init__(self, max_events: int, window_s: float) -> None:
        self.max_events = max_events
        self.window_ns = int(window_s * 1e9)
        self._sent: deque[int] = deque()
        self.suppressed = 0  # dropped since the last admitted message

    def admit(self, now_ns: int) -> bool:
        while self._sent and now_ns - self._sent[0] >= self.window_ns:
            self._sent.popleft()
        if len(self._sent) >= self.max_events:
            self.suppressed += 1
            return False
        self._sent.append(now_ns)
        return True

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n
