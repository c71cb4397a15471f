"""Historical bars as ``bars.v1`` events, in date order, so the live consumers can be driven by history.

A bar's ``ts_event`` is its close: a daily bar closes at ``close_time`` UTC on
its day (21:00, the New York close, as in the workflow), an intraday bar at
its open time plus the interval. ``source`` is the history source that served it.
"""

from __future__ import annotations

import time

import pandas as pd

from schemas.events import Bar
from schemas.topics import BARS
from streaming.bus import open_bus
from streaming.codec import encode, key_for

_INTERVAL = {"1m": "1min", "3m": "3min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "1h", "2h": "2h",
             "4h": "4h", "6h": "6h", "8h": "8h", "12h": "12h"}


def bar_events(long: pd.DataFrame, interval: str = "1d", close_time: str = "21:00",
               left_out: list[str] | None = None) -> list[Bar]:
    """Bars from a long bars table (``date, symbol, open, high, low, close, [adj_close,] volume, [source]``),
    sorted by close time then symbol. A row without a positive close is no bar: it is left out and,
    when ``left_out`` is given, named there (``SYMBOL DATE: close X``)."""
    if long.empty:
        return []
    t = pd.to_datetime(long["date"], utc=True)
    if interval == "1d":
        h, m = (int(x) for x in close_time.split(":"))
        t = t.dt.normalize() + pd.Timedelta(hours=h, minutes=m)
    else:
        t = t + pd.Timedelta(_INTERVAL[interval])
    frame = long.assign(ts_close=t.dt.as_unit("ns").astype("int64")).sort_values(["ts_close", "symbol"], kind="stable")
    now = time.time_ns()
    out = []
    for r in frame.itertuples(index=False):
        close = float(r.close)
        if not close > 0:
            if left_out is not None:
                left_out.append(f"{r.symbol} {r.date}: close {close}")
            continue
        fallback = lambda v: close if pd.isna(v) else float(v)  # noqa: E731
        out.append(Bar(symbol=str(r.symbol), ts_event=int(r.ts_close), open=fallback(getattr(r, "open", None)),
                       high=fallback(getattr(r, "high", None)), low=fallback(getattr(r, "low", None)), close=close,
                       volume=0.0 if pd.isna(getattr(r, "volume", 0.0)) else float(r.volume), interval=interval,
                       source=str(getattr(r, "source", None) or "history"), ts_ingest=now))
    return out


async def publish_bars(bars: list[Bar], bus_url: str | None = None) -> int:
    """Publish ``bars`` to bars.v1 in order (one flush at the end); the number published."""
    bus = open_bus(bus_url)
    await bus.start()
    try:
        await bus.ensure_topics([BARS.name])
        for bar in bars:
            await bus.publish(BARS.name, key_for(BARS.name, bar), encode(bar))
        await bus.flush()
    finally:
        await bus.close()
    return len(bars)
