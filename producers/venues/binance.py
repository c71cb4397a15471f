"""Binance spot adapter: combined streams ``<sym>@trade``, ``<sym>@aggTrade``,
``<sym>@bookTicker`` (and the same payloads without the combined-stream
envelope).

Mapping to :class:`schemas.events.Tick`:

- trade / aggTrade -> ``kind="trade"``; ``ts_event`` = trade time ``T`` (ms ->
  ns); ``side`` is the aggressor: ``m`` true means the buyer was the maker, so
  the aggressor sold; ``trade_id``/``seq`` = ``t`` (trade) or ``a`` (aggTrade).
- bookTicker -> ``kind="quote"``; ``seq`` = ``u``; ``ts_event`` = transaction
  time ``T`` or event time ``E`` when present (USD-M), else ``ts_recv`` (spot
  bookTicker carries no time).
- depth (``depthUpdate``, ``@depth...`` streams, REST ``lastUpdateId``
  snapshots) -> ``skipped="book"``; kline -> ``skipped="kline"``;
  subscribe acks ``{"result":..., "id":...}`` -> ``skipped="ack"``.
- Anything else, or a malformed frame -> ``error`` (dead letter).

Speed: the hot streams are decoded by msgspec straight into typed Structs
(with ``strict=False`` so decimal strings become floats; msgspec's float
parser is correctly rounded, so ``float(raw)`` round-trips). Any frame the
fast path cannot decode falls back to a generic, fully checked path.
"""

from __future__ import annotations

import msgspec

from producers.venues.base import ParseResult
from producers.venues.binance_batch import _MAX_MS, _MAX_SEQ, _SYMBOLS, BatchParseMixin, _symbol
from producers.venues.frames import (
    BadFrame,
    as_bytes,
    canonical_symbol,
    check_seq,
    decimal_str_to_float,
    ms_to_ns,
)
from schemas.events import Tick


class _Trade(msgspec.Struct, gc=False):
    s: str
    t: int
    p: float
    q: float
    T: int
    m: bool
    X: str | None = None  # USD-M trade type (MARKET, INSURANCE_FUND, ADL, NA)


class _CombinedTrade(msgspec.Struct, gc=False):
    data: _Trade


class _BookTicker(msgspec.Struct, gc=False):
    s: str
    u: int
    b: float
    B: float
    a: float
    A: float
    T: int | None = None
    E: int | None = None


class _CombinedBookTicker(msgspec.Struct, gc=False):
    data: _BookTicker


class _Envelope(msgspec.Struct):
    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"")


_trade_dec = msgspec.json.Decoder(_CombinedTrade, strict=False)
_book_dec = msgspec.json.Decoder(_CombinedBookTicker, strict=False)
_env_dec = msgspec.json.Decoder(_Envelope)
_any_dec = msgspec.json.Decoder()

_SKIP_EVENTS = {
    "depthUpdate": "book",
    "kline": "kline",
    "continuous_kline": "kline",
}
_SKIP_STREAM_PREFIX = (("depth", "book"), ("kline", "kline"), ("continuousKline", "kline"))


class BinanceAdapter(BatchParseMixin):
    """Binance spot (``wss://stream.binance.com:9443``)."""

    name = "binance"
    default_url = "wss://stream.binance.com:9443/stream"
    streams: tuple[str, ...] = ("trade", "bookTicker")
    #: USD-M only: a trade whose ``X`` is present and not MARKET is skipped
    require_market_trades = False
    #: trade frames can go through the compiled scan (producers/fastpath/binance_encode.py)
    trade_scan = True

    def __init__(self, streams: tuple[str, ...] | None = None) -> None:
        if streams is not None:
            self.streams = tuple(streams)

    # -- connection side --------------------------------------------------
    def stream_names(self, symbols: list[str]) -> list[str]:
        return [f"{canonical_symbol(s).lower()}@{st}" for s in symbols for st in self.streams]

    def url_for(self, symbols: list[str], base_url: str | None = None) -> str:
        base = (base_url or self.default_url).rstrip("/")
        if not base.endswith("/stream"):
            base += "/stream"
        return f"{base}?streams={'/'.join(self.stream_names(symbols))}"

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return []  # the combined-stream URL subscribes

    # -- parsing -----------------------------------------------------------
    def parse(self, frame: bytes | str, ts_recv: int) -> ParseResult:
        try:
            data = frame if frame.__class__ is bytes else as_bytes(frame)
            if data.find(b'@trade"', 0, 64) > 0:
                # fast path (inlined: this is the hottest code in the producer)
                try:
                    tr = _trade_dec.decode(data).data
                except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
                    tr = None
                if tr is not None:
                    p = tr.p
                    q = tr.q
                    T = tr.T
                    t = tr.t
                    if (p - p == 0.0 and q - q == 0.0 and 0 <= T <= _MAX_MS and 0 <= t <= _MAX_SEQ
                            and (tr.X is None or tr.X == "MARKET" or not self.require_market_trades)):
                        sym = _SYMBOLS.get(tr.s)
                        if sym is None:
                            sym = _symbol(tr.s)
                        if sym is not None:
                            return ParseResult([Tick(
                                symbol=sym, venue=self.name, kind="trade", ts_event=T * 1_000_000,
                                ts_recv=ts_recv, price=p, size=q, side="sell" if tr.m else "buy",
                                trade_id=str(t), seq=t,
                            )])
            elif data.find(b'@bookTicker"', 0, 64) > 0:
                try:
                    bt = _book_dec.decode(data).data
                except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
                    bt = None
                if bt is not None:
                    tick = self._fast_book(bt, ts_recv)
                    if tick is not None:
                        return ParseResult([tick])
            return self._slow(data, ts_recv)
        except BadFrame as exc:
            return ParseResult(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - parse never raises
            return ParseResult(error=f"internal: {type(exc).__name__}: {exc}")

    def _fast_book(self, bt: _BookTicker, ts_recv: int) -> Tick | None:
        b, B, a, A = bt.b, bt.B, bt.a, bt.A
        if b - b != 0.0 or B - B != 0.0 or a - a != 0.0 or A - A != 0.0 or not 0 <= bt.u <= _MAX_SEQ:
            return None
        sym = _SYMBOLS.get(bt.s)
        if sym is None:
            sym = _symbol(bt.s)
            if sym is None:
                return None
        ts = bt.T if bt.T is not None else bt.E
        if ts is None:
            ts_event = ts_recv
        elif 0 <= ts <= _MAX_MS:
            ts_event = ts * 1_000_000
        else:
            return None
        return Tick(
            symbol=sym, venue=self.name, kind="quote", ts_event=ts_event,
            ts_recv=ts_recv, bid=b, ask=a, bid_size=B, ask_size=A, seq=bt.u,
        )

    # generic path: every field checked, every outcome named
    def _slow(self, data: bytes, ts_recv: int) -> ParseResult:
        try:
            env = _env_dec.decode(data)
        except msgspec.ValidationError:
            raise BadFrame("not a JSON object") from None
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise BadFrame(f"undecodable JSON: {exc}") from None
        stream_kind = None
        if env.stream is not None and len(env.data):
            stream_kind = env.stream.partition("@")[2]
            for prefix, reason in _SKIP_STREAM_PREFIX:
                if stream_kind.startswith(prefix):
                    return ParseResult(skipped=reason)
            raw_payload = env.data
        else:
            raw_payload = data
        try:
            payload = _any_dec.decode(raw_payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise BadFrame(f"undecodable JSON: {exc}") from None
        if type(payload) is not dict:
            raise BadFrame("payload is not a JSON object")
        event = payload.get("e")
        if event == "trade" or (event is None and stream_kind == "trade"):
            return self._trade_from_dict(payload, ts_recv, "t")
        if event == "aggTrade" or (event is None and stream_kind == "aggTrade"):
            return self._trade_from_dict(payload, ts_recv, "a")
        if event == "bookTicker" or stream_kind == "bookTicker" or (
            event is None and {"u", "s", "b", "B", "a", "A"} <= payload.keys()
        ):
            return self._book_from_dict(payload, ts_recv)
        if type(event) is str and event in _SKIP_EVENTS:
            return ParseResult(skipped=_SKIP_EVENTS[event])
        if "lastUpdateId" in payload:
            return ParseResult(skipped="book")  # REST depth snapshot / partial depth
        if "result" in payload and "id" in payload:
            return ParseResult(skipped="ack")
        if "error" in payload or ("code" in payload and "msg" in payload):
            raise BadFrame(f"venue error: {payload.get('error') or payload.get('msg')}")
        if stream_kind is not None:
            raise BadFrame(f"unsupported stream {env.stream!r}")
        raise BadFrame(f"unknown frame (e={event!r})")

    def _trade_from_dict(self, d: dict, ts_recv: int, id_key: str) -> ParseResult:
        tid = check_seq(d.get(id_key), f"trade id {id_key}")
        m = d.get("m")
        if type(m) is not bool:
            raise BadFrame(f"bad maker flag m={m!r}")
        x = d.get("X")
        if x is not None and type(x) is not str:
            raise BadFrame(f"bad trade type X={x!r}")
        tick = Tick(
            symbol=canonical_symbol(d.get("s")), venue=self.name, kind="trade",
            ts_event=ms_to_ns(d.get("T"), "trade time T"), ts_recv=ts_recv,
            price=decimal_str_to_float(d.get("p"), "price"),
            size=decimal_str_to_float(d.get("q"), "quantity"),
            side="sell" if m else "buy", trade_id=str(tid), seq=tid,
        )
        if self.require_market_trades and x is not None and x != "MARKET":
            return ParseResult(skipped="non_market_trade")
        return ParseResult(ticks=[tick])

    def _book_from_dict(self, d: dict, ts_recv: int) -> ParseResult:
        u = check_seq(d.get("u"), "update id u")
        ts = d.get("T")
        if ts is None:
            ts = d.get("E")
        ts_event = ts_recv if ts is None else ms_to_ns(ts, "transaction time")
        return ParseResult(ticks=[Tick(
            symbol=canonical_symbol(d.get("s")), venue=self.name, kind="quote",
            ts_event=ts_event, ts_recv=ts_recv,
            bid=decimal_str_to_float(d.get("b"), "bid"),
            bid_size=decimal_str_to_float(d.get("B"), "bid size"),
            ask=decimal_str_to_float(d.get("a"), "ask"),
            ask_size=decimal_str_to_float(d.get("A"), "ask size"),
            seq=u,
        )])


Adapter = BinanceAdapter
