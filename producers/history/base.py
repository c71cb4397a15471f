"""The one small interface every history source implements, and the HTTP plumbing they share.

A source is an object with a ``name`` and ``async fetch(symbol, start, end,
interval) -> pd.DataFrame``: one row per bar, index the bar's UTC day (daily)
or open time (intraday), columns :data:`BAR_COLUMNS` (missing values are NaN,
never dropped: preprocessing decides). A source that cannot answer raises
:class:`SourceError` with a reason a person can act on; the fallback chain
logs it and tries the next source.

The HTTP client is aiohttp (already a dependency): none of yfinance,
alpha_vantage or python-binance can be pointed at a local server for every
call they make, so each client is a small function over :class:`Http`, which
adds the User-Agent, timeouts and retries with exponential backoff on 429
and 5xx answers (honouring ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pandas as pd

log = logging.getLogger("producers.history")

BAR_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
USER_AGENT = "ticktide-history/0.1 (+https://github.com/ticktide)"
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


class SourceError(Exception):
    """A source could not serve a symbol; ``str(exc)`` is the reason."""


class HistorySource(Protocol):
    name: str

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d") -> pd.DataFrame:
        ...


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                        index=pd.DatetimeIndex([], tz="UTC", name="date"))


def bars_frame(index, **columns) -> pd.DataFrame:
    """A bars frame in the canonical shape: float columns, missing as NaN, UTC index named date."""
    idx = pd.DatetimeIndex(index, name="date")
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    n = len(idx)
    data = {}
    for c in BAR_COLUMNS:
        v = columns.get(c)
        data[c] = pd.to_numeric(pd.Series(v if v is not None else [float("nan")] * n, index=idx),
                                errors="coerce").astype("float64")
    return pd.DataFrame(data, index=idx)


def day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


@dataclass
class HttpSettings:
    timeout_s: float = 20.0
    retries: int = 3
    backoff_s: float = 0.5  # doubled on every retry
    max_backoff_s: float = 30.0
    user_agent: str = USER_AGENT


class Http:
    """GET with a User-Agent, a timeout and retries on 429/5xx; one aiohttp session for all sources."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def __aenter__(self) -> "Http":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self.settings.user_agent},
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))
        return self._session

    async def get(self, url: str, params: dict[str, Any] | None = None, what: str = "") -> tuple[int, str]:
        """(status, body) of the first answer that is neither 429 nor 5xx, or of the last try.

        Network errors are retried too; the last one becomes a SourceError."""
        s = self.settings
        delay = s.backoff_s
        for attempt in range(s.retries + 1):
            try:
                self.requests += 1
                async with self._open().get(url, params=params) as resp:
                    body = await resp.text(errors="replace")
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                if attempt == s.retries:
                    raise SourceError(f"{what or url}: network error: {type(exc).__name__}: {exc}".rstrip(": "))
                await asyncio.sleep(min(delay, s.max_backoff_s))
                delay *= 2
                continue
            if status == 429 or status >= 500:
                if attempt == s.retries:
                    return status, body
                wait = delay
                if retry_after and retry_after.isdigit():
                    wait = max(wait, float(retry_after))
                log.info("%s: HTTP %d, retry %d/%d in %.1fs", what or url, status, attempt + 1, s.retries, wait)
                await asyncio.sleep(min(wait, s.max_backoff_s))
                delay *= 2
                continue
            return status, body
        raise AssertionError("unreachable")


def http_error(what: str, status: int, body: str) -> SourceError:
    snippet = " ".join(body.split())[:160]
    return SourceError(f"{what}: HTTP {status}" + (f": {snippet}" if snippet else ""))


class Pacer:
    """At most ``per_minute`` calls a minute (a key's rate limit), spaced evenly; shared by a source's calls."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.interval <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval
