"""Yahoo Finance's chart endpoint: ``/v8/finance/chart/{symbol}?period1&period2&interval&events=div,splits``.

Open, high, low, close, adjusted close and volume; nulls stay missing. Daily
timestamps are the session's open instant, so a bar's day is taken in the
exchange's time zone (``meta.gmtoffset``).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from producers.history.base import Http, SourceError, bars_frame, day_ms, empty_bars, http_error

DEFAULT_URL = "https://query1.finance.yahoo.com"
_INTERVALS = {"1m": "1m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "60m", "1d": "1d"}


def parse_chart(body: str, symbol: str, interval: str = "1d") -> pd.DataFrame:
    """Bars from a chart v8 answer; SourceError for an ``error`` body, an empty result or a malformed one."""
    try:
        doc = json.loads(body)
        chart = doc["chart"]
    except (ValueError, KeyError, TypeError):
        raise SourceError(f"yahoo {symbol}: not a chart answer: {' '.join(body.split())[:120]!r}") from None
    err = chart.get("error")
    if err:
        desc = err.get("description") or err.get("code") if isinstance(err, dict) else err
        raise SourceError(f"yahoo {symbol}: {desc}")
    results = chart.get("result") or []
    if not results:
        raise SourceError(f"yahoo {symbol}: empty result")
    res = results[0]
    stamps = res.get("timestamp") or []
    if not stamps:
        return empty_bars()
    try:
        quote = (res["indicators"]["quote"] or [{}])[0]
        adj = ((res["indicators"].get("adjclose") or [{}])[0]).get("adjclose")
        offset = int((res.get("meta") or {}).get("gmtoffset") or 0)
        n = len(stamps)
        cols = {k: quote.get(k) for k in ("open", "high", "low", "close", "volume")}
        for k, v in list(cols.items()) + [("adj_close", adj)]:
            if v is not None and len(v) != n:
                raise SourceError(f"yahoo {symbol}: {k} has {len(v)} values for {n} timestamps")
        t = pd.to_datetime(pd.Series(stamps, dtype="int64") + (offset if interval == "1d" else 0), unit="s", utc=True)
        index = t.dt.normalize() if interval == "1d" else t
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SourceError(f"yahoo {symbol}: malformed chart answer ({type(exc).__name__}: {exc})") from None
    return bars_frame(index.to_numpy(), adj_close=adj, **cols)


class YahooSource:
    name = "yahoo"

    def __init__(self, http: Http, base_url: str = DEFAULT_URL) -> None:
        self.http, self.base_url = http, base_url.rstrip("/")

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d") -> pd.DataFrame:
        if interval not in _INTERVALS:
            raise SourceError(f"yahoo {symbol}: interval {interval} not offered ({', '.join(_INTERVALS)})")
        params = {"period1": day_ms(start) // 1000, "period2": day_ms(end + dt.timedelta(days=1)) // 1000,
                  "interval": _INTERVALS[interval], "events": "div,splits"}
        status, body = await self.http.get(f"{self.base_url}/v8/finance/chart/{symbol}", params, f"yahoo {symbol}")
        if status != 200:
            # Yahoo answers 404 with a chart error body for unknown symbols: keep its description
            if body.lstrip().startswith("{") and '"chart"' in body:
                parse_chart(body, symbol, interval)
            raise http_error(f"yahoo {symbol}", status, body)
        return parse_chart(body, symbol, interval)
