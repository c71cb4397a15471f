"""Kraken spot adapter: websocket v1 (array frames, ``wss://ws.kraken.com``) and
v2 (JSON objects, ``wss://ws.kraken.com/v2``). ``parse`` accepts both.

v1:

- ``[channelID, [[price, volume, time, side, ordType, misc], ...], "trade", pair]``
  -> one trade per entry. ``side`` ``b``/``s`` is the taker (aggressor) side;
  ``time`` is epoch seconds as a decimal string -> ns via ``Decimal``; v1
  has no trade id (``trade_id``/``seq`` stay None).
- ``[channelID, {"a": [price, wholeLotVolume, lotVolume], "b": [...], ...}, "ticker", pair]``
  -> quote (size = lot volume, the third element); no time in the frame, so
  ``ts_event`` = ``ts_recv``.
- ``[channelID, [bid, ask, time, bidVolume, askVolume], "spread", pair]`` -> quote with time.
- ``book-*`` -> ``skipped="book"``; ``ohlc-*`` -> ``"ohlc"``.
- ``systemStatus`` -> ``"status"``, ``subscriptionStatus`` -> ``"ack"`` (an
  error status is a dead letter), ``heartbeat``/``pong`` -> ``"heartbeat"``.

v2:

- ``{"channel": "trade", "type": "snapshot"|"update", "data": [...]}`` -> one
  trade per entry (``side`` is the taker side, ``trade_id`` int -> str and
  ``seq``, RFC 3339 ``timestamp``). Snapshot trades are real past trades and
  are emitted too (the default subscription asks for no snapshot).
- ``{"channel": "ticker", ...}`` -> quote per entry (``bid``/``bid_qty``/
  ``ask``/``ask_qty``; ``timestamp`` when present else ``ts_recv``).
- ``heartbeat`` -> heartbeat, ``status`` -> status, ``book``/``level3`` ->
  book, ``ohlc`` -> ohlc; method responses (``subscribe``, ``pong``...) ->
  ``"ack"`` unless ``success`` is false (dead letter).

v2 prices are JSON numbers; msgspec decodes them with a correctly rounded
parser, so the float equals ``float(<the literal>)``.

Symbols: ``XBT/USD`` -> ``XBTUSD`` (v1), ``BTC/USD`` -> ``BTCUSD`` (v2): the
venue's own base names are kept.
"""

from __future__ import annotations

import json

from producers.venues.base import ParseResult
from producers.venues.frames import (
    BadFrame,
    canonical_symbol,
    check_seq,
    decimal_seconds_to_ns,
    decimal_str_to_float,
    decode_json,
    iso8601_to_ns,
    never_raises,
    split_pair,
)
from schemas.events import Tick

_SIDES = {"b": "buy", "s": "sell", "buy": "buy", "sell": "sell"}
_V1_EVENTS = {"systemStatus": "status", "heartbeat": "heartbeat", "pong": "heartbeat"}
_V2_SKIP = {"heartbeat": "heartbeat", "status": "status", "book": "book", "level3": "book",
            "ohlc": "ohlc", "instrument": "instrument"}
_QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "XBT", "BTC", "ETH", "DAI")


def kraken_pair(symbol: str) -> str:
    """``BTC/USD`` stays; canonical ``BTCUSD`` -> ``BTC/USD`` by known quote suffixes."""
    return split_pair(symbol, "/", _QUOTES, "a Kraken pair")


class KrakenAdapter:
    name = "kraken"
    default_url = "wss://ws.kraken.com/v2"
    channels: tuple[str, ...] = ("trade", "ticker")

    def __init__(self, version: int = 2) -> None:
        if version not in (1, 2):
            raise ValueError("Kraken websocket version must be 1 or 2")
        self.version = version
        if version == 1:
            self.default_url = "wss://ws.kraken.com"

    def url_for(self, symbols: list[str], base_url: str | None = None) -> str:
        return base_url or self.default_url

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        pairs = [kraken_pair(s) for s in symbols]
        if self.version == 1:
            return [json.dumps({"event": "subscribe", "pair": pairs, "subscription": {"name": ch}})
                    for ch in self.channels]
        out = []
        for ch in self.channels:
            params: dict = {"channel": ch, "symbol": pairs}
            if ch == "trade":
                params["snapshot"] = False
            if ch == "ticker":
                params["event_trigger"] = "bbo"  # a message per best bid/offer change
            out.append(json.dumps({"method": "subscribe", "params": params}))
        return out

    @never_raises
    def parse(self, frame: bytes | str, ts_recv: int) -> ParseResult:
        msg = decode_json(frame)
        t = type(msg)
        if t is list:
            return self._v1_array(msg, ts_recv)
        if t is not dict:
            raise BadFrame("not a JSON object or array")
        if "channel" in msg:
            return self._v2(msg, ts_recv)
        if "method" in msg:
            if msg.get("success") is False:
                raise BadFrame(f"venue error: {msg.get('method')}: {msg.get('error')}")
            return ParseResult(skipped="ack")
        event = msg.get("event")
        if type(event) is str and event in _V1_EVENTS:
            return ParseResult(skipped=_V1_EVENTS[event])
        if event in ("subscriptionStatus", "unsubscribeStatus"):
            if msg.get("status") == "error":
                raise BadFrame(f"venue error: {msg.get('errorMessage')}")
            return ParseResult(skipped="ack")
        if event == "error":
            raise BadFrame(f"venue error: {msg.get('errorMessage')}")
        raise BadFrame(f"unknown message (event={event!r})")

    # -- v1 ------------------------------------------------------------------
    def _v1_array(self, arr: list, ts_recv: int) -> ParseResult:
        if len(arr) < 4 or type(arr[-2]) is not str:
            raise BadFrame("unrecognized array frame")
        channel, pair = arr[-2], arr[-1]
        if channel.startswith("book"):
            return ParseResult(skipped="book")
        if channel.startswith("ohlc"):
            return ParseResult(skipped="ohlc")
        if len(arr) != 4:
            raise BadFrame(f"unexpected {channel} frame length {len(arr)}")
        symbol = canonical_symbol(pair)
        payload = arr[1]
        if channel == "trade":
            if type(payload) is not list:
                raise BadFrame("trade payload is not a list")
            ticks = [self._v1_trade(symbol, e, ts_recv) for e in payload]
            return ParseResult(ticks=ticks) if ticks else ParseResult(skipped="empty")
        if channel == "ticker":
            if type(payload) is not dict:
                raise BadFrame("ticker payload is not an object")
            a, b = payload.get("a"), payload.get("b")
            if type(a) is not list or type(b) is not list or len(a) < 3 or len(b) < 3:
                raise BadFrame("ticker without a/b levels")
            return ParseResult(ticks=[Tick(
                symbol=symbol, venue=self.name, kind="quote", ts_event=ts_recv, ts_recv=ts_recv,
                bid=decimal_str_to_float(b[0], "bid"), bid_size=decimal_str_to_float(b[2], "bid volume"),
                ask=decimal_str_to_float(a[0], "ask"), ask_size=decimal_str_to_float(a[2], "ask volume"),
            )])
        if channel == "spread":
            if type(payload) is not list or len(payload) < 5:
                raise BadFrame("spread payload is not [bid, ask, time, bidVolume, askVolume]")
            return ParseResult(ticks=[Tick(
                symbol=symbol, venue=self.name, kind="quote",
                ts_event=decimal_seconds_to_ns(payload[2]), ts_recv=ts_recv,
                bid=decimal_str_to_float(payload[0], "bid"), ask=decimal_str_to_float(payload[1], "ask"),
                bid_size=decimal_str_to_float(payload[3], "bid volume"),
                ask_size=decimal_str_to_float(payload[4], "ask volume"),
            )])
        raise BadFrame(f"unknown channel {channel!r}")

    def _v1_trade(self, symbol: str, e: object, ts_recv: int) -> Tick:
        if type(e) is not list or len(e) < 4:
            raise BadFrame("trade entry is not [price, volume, time, side, ...]")
        side = _SIDES.get(e[3]) if type(e[3]) is str else None
        if side is None or len(e[3]) != 1:
            raise BadFrame(f"bad side {e[3]!r}")
        return Tick(
            symbol=symbol, venue=self.name, kind="trade",
            ts_event=decimal_seconds_to_ns(e[2], "trade time"), ts_recv=ts_recv,
            price=decimal_str_to_float(e[0], "price"), size=decimal_str_to_float(e[1], "volume"),
            side=side,  # type: ignore[arg-type]
        )

    # -- v2 ------------------------------------------------------------------
    def _v2(self, msg: dict, ts_recv: int) -> ParseResult:
        channel = msg.get("channel")
        if type(channel) is str and channel in _V2_SKIP:
            return ParseResult(skipped=_V2_SKIP[channel])
        data = msg.get("data")
        if channel == "trade":
            if type(data) is not list:
                raise BadFrame("trade data is not a list")
            ticks = [self._v2_trade(d, ts_recv) for d in data]
        elif channel == "ticker":
            if type(data) is not list:
                raise BadFrame("ticker data is not a list")
            ticks = [self._v2_ticker(d, ts_recv) for d in data]
        else:
            raise BadFrame(f"unknown channel {channel!r}")
        return ParseResult(ticks=ticks) if ticks else ParseResult(skipped="empty")

    def _v2_trade(self, d: object, ts_recv: int) -> Tick:
        if type(d) is not dict:
            raise BadFrame("trade entry is not an object")
        side = d.get("side")
        if side not in ("buy", "sell"):
            raise BadFrame(f"bad side {side!r}")
        tid = d.get("trade_id")
        if tid is not None and (type(tid) is not int or tid < 0):
            raise BadFrame(f"bad trade_id {tid!r}")
        return Tick(
            symbol=canonical_symbol(d.get("symbol")), venue=self.name, kind="trade",
            ts_event=iso8601_to_ns(d.get("timestamp"), "timestamp"), ts_recv=ts_recv,
            price=decimal_str_to_float(d.get("price"), "price"),
            size=decimal_str_to_float(d.get("qty"), "qty"),
            side=side, trade_id=None if tid is None else str(tid),
            seq=None if tid is None else check_seq(tid, "trade_id"),
        )

    def _v2_ticker(self, d: object, ts_recv: int) -> Tick:
        if type(d) is not dict:
            raise BadFrame("ticker entry is not an object")
        stamp = d.get("timestamp")
        return Tick(
            symbol=canonical_symbol(d.get("symbol")), venue=self.name, kind="quote",
            ts_event=ts_recv if stamp is None else iso8601_to_ns(stamp, "timestamp"),
            ts_recv=ts_recv,
            bid=decimal_str_to_float(d.get("bid"), "bid"),
            ask=decimal_str_to_float(d.get("ask"), "ask"),
            bid_size=decimal_str_to_float(d.get("bid_qty"), "bid_qty"),
            ask_size=decimal_str_to_float(d.get("ask_qty"), "ask_qty"),
        )


Adapter = KrakenAdapter
