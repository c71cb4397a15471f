"""A Parquet cache of fetched bars: one file per (source, symbol, interval).

Each file holds the bars and, in its schema metadata, the contiguous range of
days it covers (a range with no bars, e.g. a holiday, is still covered). A
fetch of a covered range reads no network; a longer range fetches only the
days outside the covered one and stores the union. Days from today on are
never marked covered (today's bar is not final yet).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from producers.history.base import BAR_COLUMNS, HistorySource, SourceError, empty_bars, log

_META_KEY = b"ticktide.history"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ticktide" / "history"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class BarCache:
    def __init__(self, directory: str | Path | None = None) -> None:
        self.dir = Path(directory) if directory else default_cache_dir()

    def path(self, source: str, symbol: str, interval: str) -> Path:
        return self.dir / _safe(source) / f"{_safe(symbol)}_{_safe(interval)}.parquet"

    def load(self, source: str, symbol: str, interval: str) -> tuple[pd.DataFrame, tuple[dt.date, dt.date] | None]:
        """The cached bars and the covered (first, last) day; empty and None when nothing is cached."""
        import pyarrow.parquet as pq

        p = self.path(source, symbol, interval)
        if not p.exists():
            return empty_bars(), None
        try:
            table = pq.read_table(p)
            meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
            covered = (dt.date.fromisoformat(meta["first"]), dt.date.fromisoformat(meta["last"]))
        except (OSError, ValueError, KeyError):  # a damaged file is a miss, refetched and rewritten
            return empty_bars(), None
        df = table.to_pandas()
        return df[list(BAR_COLUMNS)], covered

    def covered(self, source: str, symbol: str, interval: str) -> tuple[dt.date, dt.date] | None:
        """The covered (first, last) day from the file's metadata alone (no bars read)."""
        import pyarrow.parquet as pq

        p = self.path(source, symbol, interval)
        if not p.exists():
            return None
        try:
            meta = json.loads((pq.read_schema(p).metadata or {}).get(_META_KEY, b"{}"))
            return dt.date.fromisoformat(meta["first"]), dt.date.fromisoformat(meta["last"])
        except (OSError, ValueError, KeyError):
            return None

    def save(self, source: str, symbol: str, interval: str, bars: pd.DataFrame, covered: tuple[dt.date, dt.date]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        p = self.path(source, symbol, interval)
        p.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(bars[list(BAR_COLUMNS)], preserve_index=True)
        meta = {**(table.schema.metadata or {}),
                _META_KEY: json.dumps({"first": covered[0].isoformat(), "last": covered[1].isoformat()}).encode()}
        tmp = p.with_suffix(".tmp")
        pq.write_table(table.replace_schema_metadata(meta), tmp)
        os.replace(tmp, p)


def missing_ranges(start: dt.date, end: dt.date, covered: tuple[dt.date, dt.date] | None) -> list[tuple[dt.date, dt.date]]:
    """The day ranges of [start, end] to fetch so that the cover stays one contiguous range."""
    if covered is None:
        return [(start, end)]
    c0, c1 = covered
    one = dt.timedelta(days=1)
    out = []
    if start < c0:
        out.append((start, max(c0 - one, start)))
    if end > c1:
        out.append((min(c1 + one, end), end))
    return out


class CachedSource:
    """A source behind the cache; ``fetch`` stores what it fetched only when ``check`` accepts it."""

    def __init__(self, source: HistorySource, cache: BarCache) -> None:
        self.source, self.cache, self.name = source, cache, source.name

    def covers(self, symbol: str, start: dt.date, end: dt.date, interval: str) -> bool:
        """True when [start, end] is in the cache: fetching it reads no network."""
        covered = self.cache.covered(self.name, symbol, interval)
        return covered is not None and not missing_ranges(start, end, covered)

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d",
                    check: Callable[[pd.DataFrame], None] | None = None) -> tuple[pd.DataFrame, int]:
        """(bars of [start, end], number of ranges fetched from the network)."""
        cached, covered = self.cache.load(self.name, symbol, interval)
        todo = missing_ranges(start, end, covered)
        frames = [cached]
        first, last = covered if covered else (start, end)
        for a, b in todo:
            try:
                frames.append(await self.source.fetch(symbol, a, b, interval))
            except SourceError as exc:
                if covered is None:
                    raise
                # a short range next to the cached one may hold no trading day (Stooq then answers
                # "No data"); the coverage check below decides, and the cover does not grow over it
                log.warning("%s %s: days %s..%s not fetched (%s); using the cache", self.name, symbol, a, b, exc)
                continue
            first, last = min(first, a), max(last, b)
        merged = pd.concat([f for f in frames if len(f)]) if any(len(f) for f in frames) else empty_bars()
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        t0, t1 = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
        window = merged[(merged.index >= t0) & (merged.index < t1)]
        if check is not None:
            check(window)
        if todo:
            last = min(last, _last_final_day())
            if last >= first and (first, last) != covered:
                keep = merged[merged.index < pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=1)]
                self.cache.save(self.name, symbol, interval, keep, (first, last))
        return window, len(todo)


def _last_final_day() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
