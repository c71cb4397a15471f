"""Coinbase adapter: the Exchange ws-feed (``wss://ws-feed.exchange.coinbase.com``,
formerly Coinbase Pro) and the Advanced Trade feed
(``wss://advanced-trade-ws.coinbase.com``). ``parse`` accepts both.

Exchange ws-feed (``type`` field):

- ``match`` / ``last_match`` -> trade. Coinbase's ``side`` is the **maker**
  order side ("if the side is sell this indicates the maker was a sell order
  and the match is considered an up-tick"), so the aggressor side is the
  opposite. ``trade_id`` (int) -> str, ``seq`` = ``sequence``.
- ``ticker`` -> quote (``best_bid``/``best_ask``, and
  ``best_bid_size``/``best_ask_size`` when the feed sends them; 2021-era
  tickers carry no sizes, which stay None). The trade also present in a
  ticker is not emitted again: it arrives as a ``match`` on the matches
  channel.
- ``subscriptions`` -> ``skipped="ack"``, ``heartbeat`` -> ``"heartbeat"``,
  ``status`` -> ``"status"``; ``l2update``/``snapshot`` and full-channel order
  messages -> ``"book"``; ``error`` -> dead letter with the venue's message.

Advanced Trade (``channel`` field, ``events`` list):

- ``market_trades`` -> one trade per entry of ``events[].trades``;
  ``trade_id`` is already a string; no per-trade sequence (the envelope's
  ``sequence_num`` is per connection, not per product, so it is not used).
  ASSUMPTION (not verified against a recording): ``side`` here, as on the
  Exchange feed, is the maker side, so it is flipped; see
  ``ADVANCED_SIDE_IS_MAKER``.
- ``ticker`` / ``ticker_batch`` -> one quote per ``events[].tickers`` entry
  (``best_bid``, ``best_bid_quantity``, ``best_ask``, ``best_ask_quantity``),
  ``ts_event`` = envelope ``timestamp`` (nanosecond precision) else ts_recv.
- ``subscriptions`` -> ack, ``heartbeats`` -> heartbeat, ``status`` -> status,
  ``l2_data``/``level2`` -> book, ``candles`` -> ``"candles"``.

Times are RFC 3339 strings converted to ns exactly (no float).
"""

from __future__ import annotations

import json

from producers.venues.base import ParseResult
from producers.venues.frames import (
    BadFrame,
    canonical_symbol,
    check_seq,
    decimal_str_to_float,
    decode_json,
    iso8601_to_ns,
    never_raises,
    split_pair,
)
from schemas.events import Tick

#: flip Advanced Trade ``market_trades.side`` to get the aggressor (see module doc)
ADVANCED_SIDE_IS_MAKER = True

_FLIP = {"buy": "sell", "sell": "buy"}
_SKIP_TYPES = {
    "subscriptions": "ack",
    "heartbeat": "heartbeat",
    "status": "status",
    "l2update": "book",
    "snapshot": "book",
    "received": "book",
    "open": "book",
    "done": "book",
    "change": "book",
    "activate": "book",
}
_SKIP_CHANNELS = {
    "subscriptions": "ack",
    "heartbeats": "heartbeat",
    "status": "status",
    "l2_data": "book",
    "level2": "book",
    "candles": "candles",
}
_QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "BTC", "ETH", "DAI", "SOL")


def product_id(symbol: str) -> str:
    """``BTC-USD`` stays; canonical ``BTCUSD`` -> ``BTC-USD`` by known quote suffixes."""
    return split_pair(symbol, "-", _QUOTES, "a Coinbase product id")


class CoinbaseAdapter:
    name = "coinbase"
    default_url = "wss://ws-feed.exchange.coinbase.com"
    channels: tuple[str, ...] = ("matches", "ticker")

    def __init__(self, channels: tuple[str, ...] | None = None) -> None:
        if channels is not None:
            self.channels = tuple(channels)

    def url_for(self, symbols: list[str], base_url: str | None = None) -> str:
        return base_url or self.default_url

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [json.dumps({
            "type": "subscribe",
            "product_ids": [product_id(s) for s in symbols],
            "channels": list(self.channels),
        })]

    @never_raises
    def parse(self, frame: bytes | str, ts_recv: int) -> ParseResult:
        msg = decode_json(frame)
        if type(msg) is not dict:
            raise BadFrame("not a JSON object")
        typ = msg.get("type")
        if "channel" in msg and "events" in msg:
            return self._advanced(msg, ts_recv)
        if typ == "match" or typ == "last_match":
            return ParseResult(ticks=[self._match(msg, ts_recv)])
        if typ == "ticker":
            return ParseResult(ticks=[self._ticker(msg, ts_recv)])
        if type(typ) is str and typ in _SKIP_TYPES:
            return ParseResult(skipped=_SKIP_TYPES[typ])
        if typ == "error":
            raise BadFrame(f"venue error: {msg.get('message')} {msg.get('reason') or ''}".rstrip())
        raise BadFrame(f"unknown message type {typ!r}")

    # -- Exchange ws-feed --------------------------------------------------
    def _match(self, m: dict, ts_recv: int) -> Tick:
        raw_side = m.get("side")
        side = _FLIP.get(raw_side) if type(raw_side) is str else None
        if side is None:
            raise BadFrame(f"bad side {m.get('side')!r}")
        tid = m.get("trade_id")
        if type(tid) is not int:
            raise BadFrame(f"bad trade_id {tid!r}")
        seq = m.get("sequence")
        if seq is not None:
            seq = check_seq(seq)
        return Tick(
            symbol=canonical_symbol(m.get("product_id")), venue=self.name, kind="trade",
            ts_event=iso8601_to_ns(m.get("time")), ts_recv=ts_recv,
            price=decimal_str_to_float(m.get("price"), "price"),
            size=decimal_str_to_float(m.get("size"), "size"),
            side=side, trade_id=str(tid), seq=seq,  # type: ignore[arg-type]
        )

    def _ticker(self, m: dict, ts_recv: int) -> Tick:
        seq = m.get("sequence")
        if seq is not None:
            seq = check_seq(seq)
        t = m.get("time")
        return Tick(
            symbol=canonical_symbol(m.get("product_id")), venue=self.name, kind="quote",
            ts_event=ts_recv if t is None else iso8601_to_ns(t), ts_recv=ts_recv,
            bid=decimal_str_to_float(m.get("best_bid"), "best_bid"),
            ask=decimal_str_to_float(m.get("best_ask"), "best_ask"),
            bid_size=_opt_num(m.get("best_bid_size"), "best_bid_size"),
            ask_size=_opt_num(m.get("best_ask_size"), "best_ask_size"),
            seq=seq,
        )

    # -- Advanced Trade ----------------------------------------------------
    def _advanced(self, msg: dict, ts_recv: int) -> ParseResult:
        channel = msg.get("channel")
        if type(channel) is str and channel in _SKIP_CHANNELS:
            return ParseResult(skipped=_SKIP_CHANNELS[channel])
        events = msg.get("events")
        if type(events) is not list:
            raise BadFrame("events is not a list")
        ticks: list[Tick] = []
        if channel == "market_trades":
            for ev in events:
                trades = ev.get("trades") if type(ev) is dict else None
                if type(trades) is not list:
                    raise BadFrame("market_trades event without a trades list")
                for tr in trades:
                    ticks.append(self._adv_trade(tr, ts_recv))
        elif channel in ("ticker", "ticker_batch"):
            stamp = msg.get("timestamp")
            ts_event = ts_recv if stamp is None else iso8601_to_ns(stamp, "timestamp")
            for ev in events:
                tickers = ev.get("tickers") if type(ev) is dict else None
                if type(tickers) is not list:
                    raise BadFrame("ticker event without a tickers list")
                for tk in tickers:
                    ticks.append(self._adv_ticker(tk, ts_event, ts_recv))
        else:
            raise BadFrame(f"unknown channel {channel!r}")
        if not ticks:
            return ParseResult(skipped="empty")
        return ParseResult(ticks=ticks)

    def _adv_trade(self, tr: object, ts_recv: int) -> Tick:
        if type(tr) is not dict:
            raise BadFrame("trade entry is not an object")
        raw_side = tr.get("side")
        side = raw_side.lower() if type(raw_side) is str else None
        if side not in _FLIP:
            raise BadFrame(f"bad side {raw_side!r}")
        if ADVANCED_SIDE_IS_MAKER:
            side = _FLIP[side]
        tid = tr.get("trade_id")
        if type(tid) not in (str, int):
            raise BadFrame(f"bad trade_id {tid!r}")
        return Tick(
            symbol=canonical_symbol(tr.get("product_id")), venue=self.name, kind="trade",
            ts_event=iso8601_to_ns(tr.get("time")), ts_recv=ts_recv,
            price=decimal_str_to_float(tr.get("price"), "price"),
            size=decimal_str_to_float(tr.get("size"), "size"),
            side=side, trade_id=str(tid),  # type: ignore[arg-type]
        )

    def _adv_ticker(self, tk: object, ts_event: int, ts_recv: int) -> Tick:
        if type(tk) is not dict:
            raise BadFrame("ticker entry is not an object")
        return Tick(
            symbol=canonical_symbol(tk.get("product_id")), venue=self.name, kind="quote",
            ts_event=ts_event, ts_recv=ts_recv,
            bid=decimal_str_to_float(tk.get("best_bid"), "best_bid"),
            ask=decimal_str_to_float(tk.get("best_ask"), "best_ask"),
            bid_size=_opt_num(tk.get("best_bid_quantity"), "best_bid_quantity"),
            ask_size=_opt_num(tk.get("best_ask_quantity"), "best_ask_quantity"),
        )


def _opt_num(raw: object, what: str) -> float | None:
    return None if raw is None else decimal_str_to_float(raw, what)


Adapter = CoinbaseAdapter
