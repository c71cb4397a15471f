"""Stooq's daily CSV download (``/q/d/l/?s=aapl.us&d1=YYYYMMDD&d2=YYYYMMDD&i=d``), no key.

US tickers take Stooq's ``.us`` suffix unless the symbol already has a market
suffix. Stooq answers 200 with ``No data`` (or an HTML page) for an unknown
symbol; both are failures.
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd

from producers.history.base import Http, SourceError, bars_frame, http_error

DEFAULT_URL = "https://stooq.com"


def stooq_symbol(symbol: str) -> str:
    s = symbol.lower()
    return s if "." in s or s.startswith("^") else f"{s}.us"


def parse_csv(body: str, symbol: str) -> pd.DataFrame:
    text = body.strip()
    if not text or text.lower().startswith("no data"):
        raise SourceError(f"stooq {symbol}: no data")
    if not text.lower().startswith("date,"):
        raise SourceError(f"stooq {symbol}: not a CSV answer: {' '.join(text.split())[:120]!r}")
    try:
        df = pd.read_csv(io.StringIO(text))
        cols = {c.lower(): c for c in df.columns}
        get = lambda k: df[cols[k]].to_numpy() if k in cols else None  # noqa: E731
        return bars_frame(pd.to_datetime(df[cols["date"]]), open=get("open"), high=get("high"), low=get("low"),
                          close=get("close"), volume=get("volume"))
    except (KeyError, ValueError, pd.errors.ParserError) as exc:
        raise SourceError(f"stooq {symbol}: malformed CSV ({type(exc).__name__}: {exc})") from None


class StooqSource:
    name = "stooq"

    def __init__(self, http: Http, base_url: str = DEFAULT_URL) -> None:
        self.http, self.base_url = http, base_url.rstrip("/")

    async def fetch(self, symbol: str, start: dt.date, end: dt.date, interval: str = "1d") -> pd.DataFrame:
        if interval != "1d":
            raise SourceError(f"stooq {symbol}: only daily bars (interval 1d), not {interval}")
        params = {"s": stooq_symbol(symbol), "d1": start.strftime("%Y%m%d"), "d2": end.strftime("%Y%m%d"), "i": "d"}
        status, body = await self.http.get(f"{self.base_url}/q/d/l/", params, f"stooq {symbol}")
        if status != 200:
            raise http_error(f"stooq {symbol}", status, body)
        return parse_csv(body, symbol)
