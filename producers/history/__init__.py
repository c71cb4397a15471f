"""Historical market data by symbol and dates.

Sources (one module each, one interface ``fetch(symbol, start, end, interval)
-> bars``): :mod:`.yahoo`, :mod:`.alphavantage`, :mod:`.stooq`,
:mod:`.binance`; the fallback chain per symbol (:mod:`.chain`); the Parquet
cache (:mod:`.cache`); declarative preprocessing and quality
(:mod:`.preprocess`); and :func:`load_history`, which does all of it for a
list of symbols.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field

import pandas as pd

from producers.history.base import BAR_COLUMNS, SourceError  # noqa: F401 - re-exported
from producers.history.chain import HistoryFetcher, SymbolResult, looks_like_crypto  # noqa: F401
from producers.history.config import SOURCES, HistoryConfig, parse_sources  # noqa: F401
from producers.history.preprocess import BarRules, Preprocessed, quality

log = logging.getLogger("producers.history")

LONG_COLUMNS = ("date", "symbol", "open", "high", "low", "close", "adj_close", "volume", "source")


class HistoryError(Exception):
    """No usable data (every symbol failed, or one did under ``strict``); one line per symbol."""


@dataclass
class History:
    start: dt.date
    end: dt.date
    interval: str
    bars: dict[str, pd.DataFrame] = field(default_factory=dict)  # the symbols kept, preprocessed
    fetched: dict[str, SymbolResult] = field(default_factory=dict)
    quality: dict[str, dict] = field(default_factory=dict)
    flags: dict[str, list[dict]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # one line per symbol no source could serve
    dropped: dict[str, str] = field(default_factory=dict)  # symbol -> why (quality below a threshold)

    def sources(self) -> dict[str, dict]:
        return {s: r.summary() for s, r in self.fetched.items()}

    def long(self) -> pd.DataFrame:
        """One row per (date, symbol): the long bars file ``workflow run --prices`` reads."""
        frames = []
        for sym, bars in self.bars.items():
            f = bars.reset_index()
            f["date"] = f["date"].dt.strftime("%Y-%m-%d") if self.interval == "1d" else f["date"].astype(str)
            f.insert(1, "symbol", sym)
            f["source"] = self.fetched[sym].source
            frames.append(f[list(LONG_COLUMNS)])
        if not frames:
            return pd.DataFrame(columns=list(LONG_COLUMNS))
        return pd.concat(frames, ignore_index=True).sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    def wide(self, field_name: str = "close") -> pd.DataFrame:
        close = pd.DataFrame({s: b[field_name] for s, b in self.bars.items()})
        close.index = close.index.strftime("%Y-%m-%d") if self.interval == "1d" else close.index
        close.index.name = "date"
        return close.sort_index()


async def load_history_async(symbols: list[str], start: dt.date, end: dt.date, interval: str = "1d",
                             config: HistoryConfig | None = None, cache_dir: str | None = None,
                             sources: list[str] | None = None, strict: bool = False,
                             quality_start: dt.date | None = None) -> History:
    """Fetch through the chain, preprocess with the rules, measure quality; symbols that fail are error lines.

    ``quality_start`` (default ``start``) is where completeness and a source's coverage are measured
    from: a workflow fetches a warm-up period before its own start, which a later listing may lack."""
    config = config or HistoryConfig()
    rules = BarRules.from_file(config.rules)
    thresholds = dict(rules.thresholds)
    for name in ("completeness", "accuracy"):
        if getattr(config.quality, name) is not None:
            thresholds[name] = getattr(config.quality, name)
    out = History(start, end, interval)
    async with HistoryFetcher(config, cache_dir=cache_dir, sources=sources) as fetcher:
        out.fetched = await fetcher.fetch(symbols, start, end, interval, required_from=quality_start)
    done: dict[str, Preprocessed] = {}
    for sym, res in out.fetched.items():
        if not res.ok:
            out.errors.append(res.error_line())
            continue
        done[sym] = rules.apply(sym, res.bars)
        out.flags[sym] = done[sym].flags
    out.quality = quality(done, quality_start or start, end, thresholds)
    for sym, p in done.items():
        q = out.quality[sym]
        if q["breaches"]:
            what = ", ".join(f"{b} {q[b]:.3f} < {thresholds[b]}" for b in q["breaches"])
            if config.quality.on_breach == "drop":
                out.dropped[sym] = what
                log.warning("%s: dropped: %s", sym, what)
                continue
            log.warning("%s: kept with a warning: %s", sym, what)
        out.bars[sym] = p.bars
    if strict and (out.errors or out.dropped):
        raise HistoryError("\n".join(out.errors + [f"{s}: dropped: {w}" for s, w in out.dropped.items()]))
    if not out.bars:
        raise HistoryError("\n".join(out.errors + [f"{s}: dropped: {w}" for s, w in out.dropped.items()])
                           or "no symbols")
    return out


def load_history(*args, **kwargs) -> History:
    return asyncio.run(load_history_async(*args, **kwargs))
