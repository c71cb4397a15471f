"""The fallback chain: per symbol, try the sources in order until one serves the whole range.

A source fails on a network error, an HTTP error, a throttling or error body,
an empty or malformed answer, or fewer rows than the range should hold
(``min_coverage`` of the business days for equities, of the calendar days or
intervals for crypto). Each failure is logged with its reason and recorded; the
result says which source served the symbol. A source whose cache already holds
the range is preferred (no network).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from producers.history.alphavantage import AlphaVantageSource
from producers.history.base import Http, HttpSettings, SourceError
from producers.history.binance import BinanceKlinesSource
from producers.history.cache import BarCache, CachedSource
from producers.history.config import HistoryConfig
from producers.history.stooq import StooqSource
from producers.history.yahoo import YahooSource

log = logging.getLogger("producers.history")

_CRYPTO_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_INTERVAL_MINUTES = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120, "4h": 240,
                     "6h": 360, "8h": 480, "12h": 720, "1d": 1440}


def looks_like_crypto(symbol: str) -> bool:
    s = symbol.upper()
    if "/" in s:
        return True
    return bool(re.fullmatch(r"[A-Z0-9]{2,12}", s)) and any(s.endswith(q) and len(s) > len(q) + 1
                                                             for q in _CRYPTO_QUOTES)


def default_chain(symbol: str, has_av_key: bool) -> list[str]:
    if looks_like_crypto(symbol):
        return ["binance"]
    return ["yahoo", *(["alphavantage"] if has_av_key else []), "stooq"]


def expected_rows(symbol: str, start: dt.date, end: dt.date, interval: str, crypto: bool) -> int:
    if interval == "1d":
        if crypto:
            return (end - start).days + 1
        return int(np.busday_count(start, end + dt.timedelta(days=1)))
    minutes = ((end - start).days + 1) * 1440
    return minutes // _INTERVAL_MINUTES[interval]


@dataclass
class SymbolResult:
    symbol: str
    bars: pd.DataFrame | None = field(default=None, repr=False)
    source: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason) before the one that served
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return self.bars is not None

    def error_line(self) -> str:
        return f"{self.symbol}: no source could serve it: " + "; ".join(f"{s}: {r}" for s, r in self.failures)

    def summary(self) -> dict:
        return {"source": self.source, "from_cache": self.from_cache,
                "failures": [{"source": s, "reason": r} for s, r in self.failures],
                "rows": 0 if self.bars is None else int(len(self.bars))}


class HistoryFetcher:
    """The configured sources behind the cache, and the chain over them."""

    def __init__(self, config: HistoryConfig | None = None, cache_dir: str | None = None,
                 sources: list[str] | None = None) -> None:
        self.config = config or HistoryConfig()
        self.sources_override = sources or self.config.sources
        settings = HttpSettings(timeout_s=self.config.timeout_s, retries=self.config.retries,
                                backoff_s=self.config.backoff_s)
        if self.config.user_agent:
            settings.user_agent = self.config.user_agent
        self.http = Http(settings)
        self.cache = BarCache(cache_dir or self.config.cache_dir)
        c = self.config
        self._sources: dict[str, CachedSource] = {
            "yahoo": CachedSource(YahooSource(self.http, c.url("yahoo")), self.cache),
            "stooq": CachedSource(StooqSource(self.http, c.url("stooq")), self.cache),
            "binance": CachedSource(BinanceKlinesSource(self.http, c.url("binance")), self.cache),
        }
        key = c.api_key()
        if key:
            self._sources["alphavantage"] = CachedSource(AlphaVantageSource(
                self.http, key, c.url("alphavantage"), c.alphavantage_function, c.alphavantage_calls_per_minute),
                self.cache)

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> "HistoryFetcher":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def chain_for(self, symbol: str) -> list[str]:
        return list(self.sources_override) if self.sources_override else \
            default_chain(symbol, "alphavantage" in self._sources)

    async def fetch_symbol(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d",
                           required_from: dt.date | None = None) -> SymbolResult:
        """``required_from`` (default ``start``): the rows the range should hold are counted from there; the
        days before it (a workflow's warm-up) are fetched when they exist (a later listing is not a failure)."""
        result = SymbolResult(symbol)
        chain = self.chain_for(symbol)
        crypto = looks_like_crypto(symbol) or chain == ["binance"]
        # days from today on have no final bar yet
        until = min(end, dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
        t0 = max(required_from or start, start)
        need = max(1, int(expected_rows(symbol, t0, max(until, t0), interval, crypto) * self.config.min_coverage))

        def check(bars: pd.DataFrame, _name: str = "") -> None:
            rows = int((bars.index >= pd.Timestamp(t0, tz="UTC")).sum())
            if rows == 0:
                raise SourceError("empty answer: no bars in the range")
            if rows < need:
                raise SourceError(f"{rows} rows, fewer than the {need} the range should hold")

        cached_first = [n for n in chain if n in self._sources and self._sources[n].covers(symbol, start, end, interval)]
        order = cached_first + [n for n in chain if n not in cached_first]
        for name in order:
            src = self._sources.get(name)
            if src is None:
                reason = "no API key (set ALPHAVANTAGE_API_KEY or history.alphavantage_api_key)" \
                    if name == "alphavantage" else "not configured"
                result.failures.append((name, reason))
                log.warning("%s: %s skipped: %s", symbol, name, reason)
                continue
            try:
                bars, fetched = await src.fetch(symbol, start, end, interval, check=check)
            except SourceError as exc:
                reason = str(exc).removeprefix(f"{name} {symbol}: ")
                result.failures.append((name, reason))
                log.warning("%s: %s failed: %s", symbol, name, reason)
                continue
            result.bars, result.source, result.from_cache = bars, name, fetched == 0
            log.info("%s: served by %s%s (%d rows)", symbol, name, " from the cache" if fetched == 0 else "",
                     len(bars))
            return result
        return result

    async def fetch(self, symbols: list[str], start: dt.date, end: dt.date, interval: str = "1d",
                    required_from: dt.date | None = None) -> dict[str, SymbolResult]:
        sem = asyncio.Semaphore(max(1, self.config.concurrency))

        async def one(sym: str) -> SymbolResult:
            async with sem:
                return await self.fetch_symbol(sym, start, end, interval, required_from)

        results = await asyncio.gather(*(one(s) for s in symbols))
        return dict(zip(symbols, results))
