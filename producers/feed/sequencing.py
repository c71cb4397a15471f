"""Pure pieces of the connection manager: sequence tracking and reconnect backoff.

No I/O, no clocks: both are fed numbers and answer with numbers, so they can be
tested exhaustively and reused by the live feed, the replay and the failover.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Mapping

GapPolicy = Literal["contiguous", "monotonic", "none"]

# How each venue's Tick.seq behaves, per tick kind:
# - contiguous: consecutive messages differ by exactly 1, so a jump is a gap
#   (Binance trade id ``t``, Coinbase ``sequence`` on the full channel);
#   Coinbase: the product ``sequence`` is shared by every channel, so on the
#   matches channel it jumps; its per-product ``trade_id`` is contiguous, so
#   Coinbase trades are tracked on ``trade_id`` (see SEQ_FIELDS);
# - monotonic: strictly increasing but with holes by design, so only
#   duplicates / stale replays can be detected (Binance bookTicker ``u`` is the
#   order-book update id, shared with depth updates that do not move the top
#   of book: it jumps all the time without any message being lost);
# - none: do not track.
# Kraken: v2 ``trade_id`` is "a sequence number, unique per book" (Kraken's
# docs), so contiguous; v1 trades and all tickers carry no number (untracked).
DEFAULT_POLICIES: dict[str, dict[str, GapPolicy]] = {
    "binance": {"trade": "contiguous", "quote": "monotonic"},
    "binance-usdm": {"trade": "contiguous", "quote": "monotonic"},
    "coinbase": {"trade": "contiguous", "quote": "monotonic"},
    "kraken": {"trade": "contiguous", "quote": "none"},
}
# Which Tick field carries the tracked number, when it is not ``seq``.
SEQ_FIELDS: dict[str, dict[str, str]] = {
    "coinbase": {"trade": "trade_id"},
}
FALLBACK_POLICY: dict[str, GapPolicy] = {"trade": "monotonic", "quote": "monotonic"}


def policies_for(venue: str) -> dict[str, GapPolicy]:
    """The per-kind policy for ``venue`` (``binance-sim`` style aliases share their base)."""
    if venue in DEFAULT_POLICIES:
        return dict(DEFAULT_POLICIES[venue])
    base = venue.split("-", 1)[0]
    return dict(DEFAULT_POLICIES.get(base, FALLBACK_POLICY))


def seq_fields_for(venue: str) -> dict[str, str]:
    return dict(SEQ_FIELDS.get(venue, SEQ_FIELDS.get(venue.split("-", 1)[0], {})))


def tracked_number(tick, field: str = "seq") -> int | None:
    """The number to track for ``tick`` (``seq`` or an integer ``trade_id``)."""
    if field == "seq":
        return tick.seq
    value = getattr(tick, field, None)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SeqStatus(Enum):
    UNTRACKED = "untracked"  # no seq, or the policy is "none"
    FIRST = "first"  # first seq seen for this (symbol, kind)
    OK = "ok"
    GAP = "gap"  # accepted, but messages were missed before it
    DUPLICATE = "duplicate"  # seq <= last seen: drop it


@dataclass(frozen=True, slots=True)
class SeqResult:
    status: SeqStatus
    expected: int | None = None  # for GAP: the seq we expected
    missing: int = 0  # for GAP: how many were skipped

    @property
    def accept(self) -> bool:
        return self.status is not SeqStatus.DUPLICATE


_UNTRACKED = SeqResult(SeqStatus.UNTRACKED)
_FIRST = SeqResult(SeqStatus.FIRST)
_OK = SeqResult(SeqStatus.OK)
_DUP = SeqResult(SeqStatus.DUPLICATE)


class SequenceTracker:
    """Gap and duplicate detection per (symbol, kind).

    State survives reconnects on purpose: after a reconnect the venue may
    resend messages already seen (dropped as duplicates) or skip some
    (reported as a gap).

    ``reset_below``: when a seq is more than this far *below* the last one,
    treat it as a venue-side restart (sequence numbers started over) instead of
    dropping everything from then on as duplicates. ``None`` disables it.
    """

    def __init__(self, policies: Mapping[str, GapPolicy] | None = None,
                 reset_below: int | None = None) -> None:
        self.policies: dict[str, GapPolicy] = dict(policies or FALLBACK_POLICY)
        self.reset_below = reset_below
        self._last: dict[tuple[str, str], int] = {}
        self.gaps = 0
        self.missing = 0
        self.duplicates = 0
        self.resets = 0

    def last(self, symbol: str, kind: str) -> int | None:
        return self._last.get((symbol, kind))

    def observe(self, symbol: str, kind: str, seq: int | None) -> SeqResult:
        if seq is None:
            return _UNTRACKED
        policy = self.policies.get(kind, "monotonic")
        if policy == "none":
            return _UNTRACKED
        key = (symbol, kind)
        last = self._last.get(key)
        if last is None:
            self._last[key] = seq
            return _FIRST
        if seq <= last:
            if self.reset_below is not None and last - seq > self.reset_below:
                self.resets += 1
                self._last[key] = seq
                return _FIRST
            self.duplicates += 1
            return _DUP
        self._last[key] = seq
        if policy == "contiguous" and seq != last + 1:
            missing = seq - last - 1
            self.gaps += 1
            self.missing += missing
            return SeqResult(SeqStatus.GAP, expected=last + 1, missing=missing)
        return _OK

    def snapshot(self) -> dict[str, int]:
        """``{"SYMBOL/kind": last_seq}``, e.g. to log or persist."""
        return {f"{s}/{k}": v for (s, k), v in self._last.items()}


class Backoff:
    """Exponential reconnect delays with proportional jitter, bounded.

    Attempt ``n`` (0-based) waits ``min(maximum, initial * factor**n)`` scaled
    by a uniform factor in ``[1 - jitter, 1 + jitter]`` and clipped to
    ``maximum``. With a ``seed`` the schedule is reproducible. ``max_attempts``
    (None = forever) bounds consecutive failures: ``next()`` returns None when
    they are exhausted. ``reset()`` after a healthy connection.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0,
                 jitter: float = 0.2, max_attempts: int | None = None,
                 seed: int | None = None) -> None:
        if initial < 0 or maximum < 0 or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need initial>=0, maximum>=0, factor>=1, 0<=jitter<=1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.max_attempts = max_attempts
        self._rng = random.Random(seed)
        self.attempt = 0

    def base(self, attempt: int) -> float:
        # avoid float overflow for huge attempt counts
        if self.initial == 0:
            return 0.0
        delay = self.initial
        for _ in range(attempt):
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)

    def next(self) -> float | None:
        if self.max_attempts is not None and self.attempt >= self.max_attempts:
            return None
        base = self.base(self.attempt)
        self.attempt += 1
        scale = 1.0 + self.jitter * (2.0 * self._rng.random() - 1.0)
        return max(0.0, min(self.maximum, base * scale))

    def reset(self) -> None:
        self.attempt = 0

    def schedule(self, n: int) -> list[float | None]:
        """The next ``n`` delays (advances the state; use a fresh instance to preview)."""
        return [self.next() for _ in range(n)]
