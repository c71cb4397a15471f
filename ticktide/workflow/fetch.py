"""Prices for a workflow fetched by symbol and dates (``producers.history``) instead of read from a file.

The fetch starts early enough to hold the warm-up rows before ``start``
(weekends and holidays included), goes through the fallback chain and the
cache, and is preprocessed by the history rules. Symbols no source could
serve (or dropped for their quality) are reported and left out; the others
run (``strict`` makes any of it fatal).
"""

from __future__ import annotations

import datetime as dt
import logging
import math

from producers.history import HistoryConfig, HistoryError, load_history
from ticktide.workflow.data import PriceData, prices_from_frame

log = logging.getLogger("ticktide.workflow")


def warmup_start(start: dt.date, warmup_rows: int) -> dt.date:
    """A calendar day early enough for ``warmup_rows`` trading days before ``start``."""
    return start - dt.timedelta(days=math.ceil(warmup_rows * 7 / 5 * 1.06) + 7)


def fetch_prices(symbols: list[str], start: str, end: str, warmup: int, config: HistoryConfig,
                 cache_dir: str | None = None, sources: list[str] | None = None,
                 strict: bool = False) -> tuple[PriceData, list[str], dict]:
    """(prices, the symbols that have data, the ``data`` section of results.json)."""
    t0, t1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if t1 < t0:
        raise ValueError("--end is before --start")
    try:
        history = load_history(symbols, warmup_start(t0, warmup), t1, "1d", config=config, cache_dir=cache_dir,
                               sources=sources, strict=strict, quality_start=t0)
    except HistoryError as exc:
        raise ValueError(f"no usable prices: {'; '.join(str(exc).splitlines())}") from None
    for line in history.errors:
        log.warning("%s", line)
    kept = [s for s in symbols if s in history.bars]
    info = {"fetched_from": warmup_start(t0, warmup).isoformat(), "sources": history.sources(),
            "quality": history.quality, "errors": history.errors, "dropped": history.dropped}
    return prices_from_frame(history.long()), kept, info
