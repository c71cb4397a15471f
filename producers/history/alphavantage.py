"""Alpha Vantage ``TIME_SERIES_DAILY_ADJUSTED`` (or ``TIME_SERIES_DAILY`` for keys whose plan lacks it).

Alpha Vantage answers HTTP 200 when it refuses: a ``Note`` or ``Information``
body (throttling, premium endpoint) or an ``Error Message`` body (bad symbol,
bad key). Each is a failure carrying Alpha Vantage's own text, except an
``Information`` body that calls the adjusted series premium: then the source
switches to ``TIME_SERIES_DAILY`` for this and later calls. Calls are paced to
the key's rate limit (``calls_per_minute``).
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from producers.history.base import Http, Pacer, SourceError, bars_frame, http_error

DEFAULT_URL = "https://www.alphavantage.co"
FUNCTIONS = ("TIME_SERIES_DAILY_ADJUSTED", "TIME_SERIES_DAILY")


def parse_daily(body: str, symbol: str) -> pd.DataFrame:
    try:
        doc = json.loads(body)
    except ValueError:
        raise SourceError(f"alphavantage {symbol}: not JSON: {' '.join(body.split())[:120]!r}") from None
    if not isinstance(doc, dict):
        raise SourceError(f"alphavantage {symbol}: unexpected answer {body[:80]!r}")
    for key in ("Error Message", "Note", "Information"):
        if key in doc:
            raise SourceError(f"alphavantage {symbol}: {key}: {' '.join(str(doc[key]).split())[:300]}")
    series = doc.get("Time Series (Daily)")
    if not isinstance(series, dict):
        raise SourceError(f"alphavantage {symbol}: no 'Time Series (Daily)' in the answer (keys: {', '.join(doc)[:120]})")
    if not series:
        raise SourceError(f"alphavantage {symbol}: empty time series")
    days = sorted(series)
    try:
        rows = [series[d] for d in days]
        col = lambda k: [r.get(k) for r in rows]  # noqa: E731
        adjusted = any("5. adjusted close" in r for r in rows)
        return bars_frame(pd.to_datetime(days),
                          open=col("1. open"), high=col("2. high"), low=col("3. low"), close=col("4. close"),
                          adj_close=col("5. adjusted close") if adjusted else None,
                          volume=col("6. volume") if adjusted else col("5. volume"))
    except (AttributeError, ValueError, TypeError) as exc:
        raise SourceError(f"alphavantage {symbol}: malformed time series ({type(exc).__name__}: {exc})") from None


def _premium_refusal(body: str) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and "premium" in str(doc.get("Information", "")).lower()


class AlphaVantageSource:
    name = "alphavantage"

    def __init__(self, http: Http, api_key: str, base_url: str = DEFAULT_URL,
                 function: str = "TIME_SERIES_DAILY_ADJUSTED", calls_per_minute: float = 5.0) -> None:
        if function not in FUNCTIONS:
            raise ValueError(f"alphavantage function must be one of {', '.join(FUNCTIONS)}, not {function!r}")
        self.http, self.api_key, self.base_url, self.function = http, api_key, base_url.rstrip("/"), function
        self.pacer = Pacer(calls_per_minute)

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d") -> pd.DataFrame:
        if interval != "1d":
            raise SourceError(f"alphavantage {symbol}: only daily bars (interval 1d), not {interval}")
        # compact is the last 100 days; older starts need the full history
        recent = (dt.date.today() - start).days < 140
        while True:
            params = {"function": self.function, "symbol": symbol, "apikey": self.api_key,
                      "outputsize": "compact" if recent else "full", "datatype": "json"}
            await self.pacer.wait()
            status, body = await self.http.get(f"{self.base_url}/query", params, f"alphavantage {symbol}")
            if status != 200:
                raise http_error(f"alphavantage {symbol}", status, body.replace(self.api_key, "***"))
            if self.function == "TIME_SERIES_DAILY_ADJUSTED" and _premium_refusal(body):
                self.function = "TIME_SERIES_DAILY"  # the key's plan lacks the adjusted series
                continue
            break
        bars = parse_daily(body, symbol)
        return bars.loc[pd.Timestamp(start, tz="UTC"):pd.Timestamp(end, tz="UTC")]
