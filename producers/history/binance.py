"""Binance spot klines, ``/api/v3/klines``, paged over any date range (1,000 bars a page).

Each kline is ``[open_time, open, high, low, close, volume, close_time, ...]``;
a page starts at the previous page's last open time + 1 ms. Daily bars are
indexed by their UTC day, intraday ones by their open time.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from producers.history.base import Http, SourceError, bars_frame, day_ms, http_error

DEFAULT_URL = "https://api.binance.com"
PAGE = 1000
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")


def parse_klines(body: str, symbol: str) -> list[list]:
    try:
        rows = json.loads(body)
    except ValueError:
        raise SourceError(f"binance {symbol}: not JSON: {' '.join(body.split())[:120]!r}") from None
    if isinstance(rows, dict):  # {"code": -1121, "msg": "Invalid symbol."}
        raise SourceError(f"binance {symbol}: {rows.get('msg') or rows}")
    if not isinstance(rows, list) or any(not isinstance(r, list) or len(r) < 7 for r in rows):
        raise SourceError(f"binance {symbol}: malformed klines answer")
    return rows


def klines_frame(rows: list[list], interval: str) -> pd.DataFrame:
    t = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True)
    if interval == "1d":
        t = t.normalize()
    return bars_frame(t, open=[r[1] for r in rows], high=[r[2] for r in rows], low=[r[3] for r in rows],
                      close=[r[4] for r in rows], volume=[r[5] for r in rows])


class BinanceKlinesSource:
    name = "binance"

    def __init__(self, http: Http, base_url: str = DEFAULT_URL, page_size: int = PAGE) -> None:
        self.http, self.base_url, self.page_size = http, base_url.rstrip("/"), page_size

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d") -> pd.DataFrame:
        if interval not in INTERVALS:
            raise SourceError(f"binance {symbol}: interval {interval} not offered ({', '.join(INTERVALS)})")
        pair = symbol.replace("/", "").replace("-", "").upper()
        t0, t1 = day_ms(start), day_ms(end + dt.timedelta(days=1)) - 1
        rows: list[list] = []
        while t0 <= t1:
            params = {"symbol": pair, "interval": interval, "startTime": t0, "endTime": t1, "limit": self.page_size}
            status, body = await self.http.get(f"{self.base_url}/api/v3/klines", params, f"binance {symbol}")
            if status != 200:
                try:
                    parse_klines(body, symbol)
                except SourceError as exc:
                    raise SourceError(f"{exc} (HTTP {status})") from None
                raise http_error(f"binance {symbol}", status, body)
            page = parse_klines(body, symbol)
            if not page:
                break
            rows.extend(page)
            nxt = int(page[-1][0]) + 1
            if len(page) < self.page_size or nxt <= t0:
                break
            t0 = nxt
        return klines_frame(rows, interval)
