"""Canonical-form helpers shared by the venue adapters (pure, exact, never float-rounded).

- :func:`canonical_symbol`: upper case, separators removed (``BTC-USD`` ->
  ``BTCUSD``, ``XBT/USD`` -> ``XBTUSD``). Venue base names are kept as the
  venue spells them (Kraken v1 ``XBT`` stays ``XBTUSD`` while Kraken v2 says
  ``BTC/USD`` -> ``BTCUSD``); mapping aliases across venues is a downstream
  concern.
- :func:`iso8601_to_ns`: ``2021-04-17T16:43:30.244075Z`` -> ns, exactly, with
  up to 9 fractional digits (more are truncated).
- :func:`decimal_seconds_to_ns`: ``"1618678142.557535"`` -> ns via ``Decimal``.
- :func:`decimal_str_to_float`: a venue decimal string -> float, rejecting
  anything that is not a plain finite decimal (``nan``, ``inf``, ``1_0``...).
- :func:`decode_json`, :func:`never_raises` (the ``parse`` guard that turns
  any exception into a dead-letter result) and :func:`split_pair` (canonical
  symbol -> the venue's ``BASE<sep>QUOTE``).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable

import msgspec

from producers.venues.base import ParseResult

MAX_NS = 2**63 - 1
_SEPARATORS = re.compile(r"[-/_:. ]")
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BadFrame(Exception):
    """Raised inside adapters for a frame that must be dead-lettered; never escapes parse."""


def canonical_symbol(venue_symbol: str) -> str:
    if type(venue_symbol) is not str or not venue_symbol:
        raise BadFrame("missing or non-string symbol")
    sym = _SEPARATORS.sub("", venue_symbol).upper()
    if not sym or not sym.isalnum():
        raise BadFrame(f"bad symbol {venue_symbol!r}")
    return sym


def decimal_str_to_float(raw: object, what: str = "number") -> float:
    """Venue decimal (string, or JSON number already decoded) -> finite float."""
    t = type(raw)
    if t is str:
        if not _DECIMAL.fullmatch(raw):  # type: ignore[arg-type]
            raise BadFrame(f"bad {what} {raw!r}")
        value = float(raw)  # type: ignore[arg-type]
    elif t is float or t is int:
        value = float(raw)  # type: ignore[arg-type]
    else:
        raise BadFrame(f"bad {what} type {t.__name__}")
    if value - value != 0.0:  # inf or nan
        raise BadFrame(f"non-finite {what} {raw!r}")
    return value


def check_ns(value: int, what: str = "timestamp") -> int:
    if type(value) is not int or value < 0 or value > MAX_NS:
        raise BadFrame(f"bad {what} {value!r}")
    return value


def check_seq(value: object, what: str = "sequence") -> int:
    """A venue id/sequence number that fits in int64 (what every consumer can store)."""
    if type(value) is not int or value < 0 or value > MAX_NS:
        raise BadFrame(f"bad {what} {value!r}")
    return value  # type: ignore[return-value]


def ms_to_ns(ms: object, what: str = "timestamp") -> int:
    if type(ms) is not int or ms < 0 or ms > MAX_NS // 1_000_000:
        raise BadFrame(f"bad {what} {ms!r}")
    return ms * 1_000_000  # type: ignore[operator]


def decimal_seconds_to_ns(raw: object, what: str = "timestamp") -> int:
    """Epoch seconds with a fraction (string or number) -> ns, exact for strings."""
    if type(raw) is float:
        raw = repr(raw)
    if type(raw) is int:
        raw = str(raw)
    if type(raw) is not str or not _DECIMAL.fullmatch(raw):
        raise BadFrame(f"bad {what} {raw!r}")
    try:
        seconds = Decimal(raw)
        if seconds.adjusted() > 12:  # beyond int64 ns anyway; and no 100,000-digit int to build
            raise BadFrame(f"bad {what} {raw[:40]!r}: out of range")
        ns = int(seconds.scaleb(9))
    except (ArithmeticError, ValueError):  # decimal.Overflow, InvalidOperation, OverflowError
        raise BadFrame(f"bad {what} {raw[:40]!r}") from None
    return check_ns(ns, what)


def iso8601_to_ns(raw: object, what: str = "time") -> int:
    """RFC 3339 / ISO 8601 UTC time -> ns since epoch, exactly (no float)."""
    if type(raw) is not str:
        raise BadFrame(f"bad {what} {raw!r}")
    m = _ISO.fullmatch(raw)
    if m is None:
        raise BadFrame(f"bad {what} {raw!r}")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), tzinfo=timezone.utc)
    except ValueError:
        raise BadFrame(f"bad {what} {raw!r}") from None
    delta = dt - _EPOCH
    secs = delta.days * 86_400 + delta.seconds
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    ns = secs * 1_000_000_000
    if frac:
        ns += int(frac[:9].ljust(9, "0"))
    return check_ns(ns, what)


def as_bytes(frame: bytes | bytearray | memoryview | str) -> bytes:
    t = type(frame)
    if t is bytes:
        return frame  # type: ignore[return-value]
    if t is str:
        return frame.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    if t is bytearray or t is memoryview:
        return bytes(frame)  # type: ignore[arg-type]
    raise BadFrame(f"frame is {t.__name__}, not bytes or str")


_json_decoder = msgspec.json.Decoder()


def decode_json(frame: bytes | bytearray | memoryview | str) -> Any:
    """A frame's JSON value; undecodable JSON is a BadFrame."""
    try:
        return _json_decoder.decode(as_bytes(frame))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec: bad UTF-8 in a string
        raise BadFrame(f"undecodable JSON: {exc}") from None


def never_raises(parse: Callable[..., ParseResult]) -> Callable[..., ParseResult]:
    """Wrap an adapter's ``parse``: a BadFrame, or any other exception, becomes ``ParseResult(error=...)``."""

    @functools.wraps(parse)
    def guarded(self, frame, ts_recv: int) -> ParseResult:
        try:
            return parse(self, frame, ts_recv)
        except BadFrame as exc:
            return ParseResult(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - parse never raises
            return ParseResult(error=f"internal: {type(exc).__name__}: {exc}")

    return guarded


def split_pair(symbol: str, sep: str, quotes: Iterable[str], what: str) -> str:
    """A venue pair from a symbol: ``BTC<sep>USD`` stays (upper-cased); canonical
    ``BTCUSD`` -> ``BTC<sep>USD`` by the first of ``quotes`` it ends with."""
    if sep in symbol:
        return symbol.upper()
    s = symbol.upper()
    for q in quotes:
        if s.endswith(q) and len(s) > len(q):
            return f"{s[: -len(q)]}{sep}{q}"
    raise ValueError(f"cannot split {symbol!r} into {what}; pass BASE{sep}QUOTE")
