"""A local HTTP server replaying real Yahoo, Alpha Vantage, Stooq and Binance answers (no mocks of the clients).

``HistoryServer`` runs an aiohttp app on 127.0.0.1 in a thread; per (source,
symbol) it serves either a script of canned answers (status, body) -- the
captured fixtures in tests/data/history -- or, for symbols given as real
prices, answers built in each API's exact format from that data, filtered by
the request's date range. It counts requests per source.

The builders use the real closes of tests/data/stock_prices_20.csv: the files
have closes only, so open = high = low = close and the volume is a constant.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
from aiohttp import web

DATA = Path(__file__).resolve().parent / "data"
HISTORY = DATA / "history"
VOLUME = 1_000_000.0


def fixture(name: str) -> str:
    return (HISTORY / name).read_text()


def stock_closes(symbols: list[str], start: str, end: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / "stock_prices_20.csv", index_col=0, parse_dates=True)
    return df.loc[start:end, symbols]


# -- answers in each API's format ---------------------------------------------------

def yahoo_chart(symbol: str, closes: pd.Series) -> str:
    closes = closes.dropna()
    ts = [int((d + pd.Timedelta(hours=14, minutes=30)).tz_localize("UTC").timestamp()) for d in closes.index]
    px = [float(x) for x in closes]
    return json.dumps({"chart": {"result": [{
        "meta": {"currency": "USD", "symbol": symbol, "exchangeName": "NMS", "instrumentType": "EQUITY",
                 "gmtoffset": -18000, "timezone": "EST", "exchangeTimezoneName": "America/New_York",
                 "dataGranularity": "1d", "range": ""},
        "timestamp": ts,
        "indicators": {"quote": [{"open": px, "high": px, "low": px, "close": px, "volume": [int(VOLUME)] * len(px)}],
                       "adjclose": [{"adjclose": px}]}}], "error": None}})


def alphavantage_daily(symbol: str, closes: pd.Series) -> str:
    closes = closes.dropna()
    series = {}
    for d, c in sorted(closes.items(), reverse=True):
        v = f"{c:.6f}"
        series[d.date().isoformat()] = {"1. open": v, "2. high": v, "3. low": v, "4. close": v,
                                        "5. adjusted close": v, "6. volume": str(int(VOLUME)),
                                        "7. dividend amount": "0.0000", "8. split coefficient": "1.0"}
    return json.dumps({"Meta Data": {"1. Information": "Daily Time Series with Splits and Dividend Events",
                                     "2. Symbol": symbol, "4. Output Size": "Full size", "5. Time Zone": "US/Eastern"},
                       "Time Series (Daily)": series}, indent=4)


def stooq_csv(closes: pd.Series) -> str:
    out = io.StringIO()
    out.write("Date,Open,High,Low,Close,Volume\n")
    for d, c in closes.dropna().items():
        out.write(f"{d.date().isoformat()},{c},{c},{c},{c},{int(VOLUME)}\n")
    return out.getvalue()


def klines(closes: pd.Series, interval_ms: int = 86_400_000) -> list[list]:
    rows = []
    for d, c in closes.dropna().items():
        t = int(pd.Timestamp(d).tz_localize("UTC").timestamp() * 1000) if pd.Timestamp(d).tzinfo is None \
            else int(pd.Timestamp(d).timestamp() * 1000)
        v = f"{c:.8f}"
        rows.append([t, v, v, v, v, f"{VOLUME:.8f}", t + interval_ms - 1, "0", 1, "0", "0", "0"])
    return rows


# -- the server -------------------------------------------------------------------

class HistoryServer:
    """``script(source, symbol, [(status, body), ...])``: answers in order, the last one repeats.
    ``serve(source, symbol, closes)``: answers built from real closes, filtered by the request's range."""

    def __init__(self, binance_max_limit: int = 1000) -> None:
        self.scripts: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self.data: dict[tuple[str, str], pd.Series] = {}
        self.raw_klines: dict[str, list[list]] = {}
        self.requests: Counter = Counter()
        self.log: list[tuple[str, dict]] = []
        self.user_agents: set[str] = set()
        self.binance_max_limit = binance_max_limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # configuration
    def script(self, source: str, symbol: str, answers: list[tuple[int, str]]) -> None:
        self.scripts[(source, symbol.upper())] = list(answers)

    def serve(self, source: str, symbol: str, closes: pd.Series) -> None:
        self.data[(source, symbol.upper())] = closes

    def serve_klines(self, symbol: str, rows: list[list]) -> None:
        self.raw_klines[symbol.upper()] = rows

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"TICKTIDE_YAHOO_URL": self.url, "TICKTIDE_ALPHAVANTAGE_URL": self.url,
                "TICKTIDE_STOOQ_URL": self.url, "TICKTIDE_BINANCE_REST_URL": self.url}

    # answers
    def _scripted(self, source: str, symbol: str) -> web.Response | None:
        answers = self.scripts.get((source, symbol.upper()))
        if not answers:
            return None
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        ctype = "text/csv" if source == "stooq" and not body.lstrip().startswith("{") else "application/json"
        return web.Response(status=status, text=body, content_type=ctype)

    @staticmethod
    def _window(closes: pd.Series, t0: pd.Timestamp, t1: pd.Timestamp) -> pd.Series:
        idx = closes.index.tz_localize("UTC") if closes.index.tz is None else closes.index
        mask = (idx >= t0) & (idx < t1)
        return closes[mask]

    async def _yahoo(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        self._count("yahoo", request)
        scripted = self._scripted("yahoo", symbol)
        if scripted is not None:
            return scripted
        closes = self.data.get(("yahoo", symbol.upper()))
        if closes is None:
            return web.Response(status=404, text=fixture("yahoo_chart_not_found.json"), content_type="application/json")
        t0 = pd.Timestamp(int(request.query["period1"]), unit="s", tz="UTC")
        t1 = pd.Timestamp(int(request.query["period2"]), unit="s", tz="UTC")
        return web.Response(text=yahoo_chart(symbol, self._window(closes, t0, t1)), content_type="application/json")

    async def _alphavantage(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        self._count("alphavantage", request)
        scripted = self._scripted("alphavantage", symbol)
        if scripted is not None:
            return scripted
        closes = self.data.get(("alphavantage", symbol.upper()))
        if closes is None:
            return web.Response(text=json.dumps({"Error Message": "Invalid API call. Please retry or visit the "
                                                 "documentation (https://www.alphavantage.co/documentation/) for "
                                                 "TIME_SERIES_DAILY_ADJUSTED."}), content_type="application/json")
        return web.Response(text=alphavantage_daily(symbol, closes), content_type="application/json")

    async def _stooq(self, request: web.Request) -> web.Response:
        s = request.query.get("s", "")
        symbol = s.split(".")[0].upper()
        self._count("stooq", request)
        scripted = self._scripted("stooq", symbol)
        if scripted is not None:
            return scripted
        closes = self.data.get(("stooq", symbol))
        if closes is None:
            return web.Response(text="No data", content_type="text/plain")
        t0 = pd.Timestamp(dt.datetime.strptime(request.query["d1"], "%Y%m%d"), tz="UTC")
        t1 = pd.Timestamp(dt.datetime.strptime(request.query["d2"], "%Y%m%d"), tz="UTC") + pd.Timedelta(days=1)
        window = self._window(closes, t0, t1).dropna()
        if window.empty:  # what Stooq answers for a range without a trading day
            return web.Response(text="No data", content_type="text/plain")
        return web.Response(text=stooq_csv(window), content_type="text/csv")

    async def _klines(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        self._count("binance", request)
        scripted = self._scripted("binance", symbol)
        if scripted is not None:
            return scripted
        rows = self.raw_klines.get(symbol.upper())
        if rows is None:
            closes = self.data.get(("binance", symbol.upper()))
            if closes is None:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            rows = klines(closes)
        t0 = int(request.query.get("startTime", 0))
        t1 = int(request.query.get("endTime", 2**62))
        limit = min(int(request.query.get("limit", 500)), self.binance_max_limit)
        page = [r for r in rows if t0 <= r[0] <= t1][:limit]
        return web.json_response(page)

    def _count(self, source: str, request: web.Request) -> None:
        self.requests[source] += 1
        self.log.append((source, dict(request.query)))
        self.user_agents.add(request.headers.get("User-Agent", ""))

    # lifecycle
    def __enter__(self) -> "HistoryServer":
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/v8/finance/chart/{symbol}", self._yahoo)
            app.router.add_get("/query", self._alphavantage)
            app.router.add_get("/q/d/l/", self._stooq)
            app.router.add_get("/api/v3/klines", self._klines)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="history-server")
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
