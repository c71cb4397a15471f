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

import gc
from itertools import repeat
from typing import Annotated

import msgspec

from producers.base import ParseResult
from producers.frames import (
    BadFrame,
    as_bytes,
    canonical_symbol,
    check_seq,
    decimal_str_to_float,
    ms_to_ns,
)
from schemas.events import Tick

_MAX_MS = (2**63 - 1) // 1_000_000
_MAX_SEQ = 2**63 - 1


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


_FINITE = msgspec.Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)  # rejects nan, inf


class _BatchTrade(msgspec.Struct, gc=False):
    """_Trade with the fast path's checks done by the decoder (in C): finite price and
    size, times and ids in range. A frame failing them fails the batch decode, and
    its run goes through ``parse`` frame by frame."""

    s: str
    t: Annotated[int, msgspec.Meta(ge=0, le=_MAX_SEQ)]
    p: Annotated[float, _FINITE]
    q: Annotated[float, _FINITE]
    T: Annotated[int, msgspec.Meta(ge=0, le=_MAX_MS)]
    m: bool
    X: str | None = None


class _CombinedBatchTrade(msgspec.Struct, gc=False):
    data: _BatchTrade


_trade_dec = msgspec.json.Decoder(_CombinedTrade, strict=False)
# a run of trade frames, joined into one JSON array
_trades_dec = msgspec.json.Decoder(list[_CombinedBatchTrade], strict=False)
_book_dec = msgspec.json.Decoder(_CombinedBookTicker, strict=False)
_env_dec = msgspec.json.Decoder(_Envelope)
_any_dec = msgspec.json.Decoder()

_SKIP_EVENTS = {
    "depthUpdate": "book",
    "kline": "kline",
    "continuous_kline": "kline",
}
_SKIP_STREAM_PREFIX = (("depth", "book"), ("kline", "kline"), ("continuousKline", "kline"))


_SYMBOLS: dict[str, str] = {}  # venue symbol -> canonical, bounded cache


def _symbol(raw: str) -> str | None:
    """Canonical symbol for the fast paths, or None (the checked path then says why)."""
    if not raw or not raw.isalnum() or not raw.isascii():
        return None
    sym = raw.upper()
    if len(_SYMBOLS) < 10_000:
        _SYMBOLS[raw] = sym
    return sym


class BinanceAdapter:
    """Binance spot (``wss://stream.binance.com:9443``)."""

    name = "binance"
    default_url = "wss://stream.binance.com:9443/stream"
    streams: tuple[str, ...] = ("trade", "bookTicker")
    #: USD-M only: a trade whose ``X`` is present and not MARKET is skipped
    require_market_trades = False

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
                except (msgspec.ValidationError, msgspec.DecodeError):
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
                except (msgspec.ValidationError, msgspec.DecodeError):
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

    def parse_many(self, frames, ts_recv, problems: list | None = None) -> list[Tick]:
        """Parse a batch of frames (e.g. one websocket read burst, or a file chunk).

        Returns the ticks of every frame, in frame order: exactly the ticks that
        ``parse`` would give frame by frame. ``ts_recv`` is one receive time for
        the whole batch or a sequence with one per frame. Frames that yield no
        tick (a skip or an error) are reported, when ``problems`` is a list, as
        ``(index, ParseResult)`` appended to it. Never raises on bad input.

        Runs of ``@trade`` frames are decoded by one msgspec call (the frames
        joined into a JSON array); if that run does not decode as exactly one
        trade per frame, or a trade fails a check, those frames go through
        ``parse`` one by one, so the outcome never differs from ``parse``.

        For batches of 64 frames or more the cyclic garbage collector is paused
        while the batch is built (and switched back on before returning, if it
        was on): every tick of a batch stays alive until the call returns, so
        collections during it free nothing and only promote the batch towards
        the older generations (bench/results/parse.md: ~4% of the batch path).
        Nothing is left uncollected: the collection that was due runs at the
        next allocation after the call.
        """
        n = len(frames)
        if n == 0:
            return []
        if n < 64 or not gc.isenabled():
            return self._parse_many(frames, n, ts_recv, problems)
        gc.disable()
        try:
            return self._parse_many(frames, n, ts_recv, problems)
        finally:
            gc.enable()

    def _parse_many(self, frames, n: int, ts_recv, problems: list | None) -> list[Tick]:
        out: list[Tick] = []
        per_frame = hasattr(ts_recv, "__getitem__")
        if n >= 2:
            # the usual batch (one trade stream): every frame a trade frame, one run
            try:
                p0 = frames[0].find(b'@trade"', 0, 64)
                if p0 > 0:
                    # the first frame's bytes up to its '@trade"' hold no earlier '@trade"', so
                    # a frame starting with them has its first one at p0 too (as parse checks)
                    head = frames[0][:p0 + 7]
                    every = all([f.startswith(head) for f in frames])
                    if not every:
                        every = min([f.find(b'@trade"', 0, 64) for f in frames]) > 0
                else:
                    every = False
            except (AttributeError, TypeError):  # str / memoryview frames: below
                every = False
            if every:
                self._trade_run(frames, 0, ts_recv, per_frame, out, problems)
                return out
        parse = self.parse
        start = 0
        while start < n:
            # the longest run of trade frames from `start`
            end = start
            run = []
            while end < n:
                f = frames[end]
                if f.__class__ is not bytes:
                    try:
                        f = as_bytes(f)
                    except BadFrame:
                        break
                if f.find(b'@trade"', 0, 64) <= 0:
                    break
                run.append(f)
                end += 1
            if end - start >= 2:
                self._trade_run(run, start, ts_recv, per_frame, out, problems)
                start = end
                continue
            # a single frame (or a run of one): the per-frame path
            if end == start:
                end = start + 1
            for i in range(start, end):
                res = parse(frames[i], ts_recv[i] if per_frame else ts_recv)
                if res.ticks:
                    out.extend(res.ticks)
                elif problems is not None:
                    problems.append((i, res))
            start = end
        return out

    def _trade_run(self, run: list[bytes], first: int, ts_recv, per_frame: bool,
                   out: list[Tick], problems: list | None) -> None:
        try:
            decoded = _trades_dec.decode(b"[" + b",".join(run) + b"]")
        except (msgspec.ValidationError, msgspec.DecodeError):
            decoded = None
        if decoded is None or len(decoded) != len(run):
            decoded = [None] * len(run)
        elif self._trade_run_bulk(decoded, first, ts_recv, per_frame, out):
            return
        append = out.append
        name = self.name
        market_only = self.require_market_trades
        symbols = _SYMBOLS
        ts = ts_recv
        j = -1
        for env in decoded:
            j += 1
            if per_frame:
                ts = ts_recv[first + j]
            if env is not None:
                tr = env.data
                sym = symbols.get(tr.s)
                if sym is None:
                    sym = _symbol(tr.s)
                if sym is not None and (not market_only or tr.X is None or tr.X == "MARKET"):
                    t = tr.t
                    append(Tick(
                        symbol=sym, venue=name, kind="trade", ts_event=tr.T * 1_000_000,
                        ts_recv=ts, price=tr.p, size=tr.q, side="sell" if tr.m else "buy",
                        trade_id=str(t), seq=t,
                    ))
                    continue
            # anything the batch fast path does not accept: exactly what parse says
            res = self.parse(run[j], ts)
            if res.ticks:
                out.extend(res.ticks)
            elif problems is not None:
                problems.append((first + j, res))

    def _trade_run_bulk(self, decoded: list, first: int, ts_recv, per_frame: bool,
                        out: list[Tick]) -> bool:
        """All of a decoded run to ticks in one comprehension, when every trade passes
        (known-good symbols, market trades where required); else False, nothing done."""
        datas = [e.data for e in decoded]
        syms: dict[str, str] = {}
        for raw in {d.s for d in datas}:
            sym = _SYMBOLS.get(raw)
            if sym is None:
                sym = _symbol(raw)
                if sym is None:
                    return False
            syms[raw] = sym
        if self.require_market_trades and not {d.X for d in datas} <= {None, "MARKET"}:
            return False
        name = self.name
        k = len(datas)
        if per_frame:
            if type(ts_recv) is list or type(ts_recv) is tuple:
                recv = ts_recv[first:first + k]
            else:
                recv = [ts_recv[first + j] for j in range(k)]
        else:
            recv = repeat(ts_recv, k)
        if len(syms) == 1:
            (sym,) = syms.values()
            out += [Tick(symbol=sym, venue=name, kind="trade", ts_event=d.T * 1_000_000, ts_recv=r,
                         price=d.p, size=d.q, side="sell" if d.m else "buy", trade_id=str(d.t), seq=d.t)
                    for d, r in zip(datas, recv)]
        else:
            out += [Tick(symbol=syms[d.s], venue=name, kind="trade", ts_event=d.T * 1_000_000,
                         ts_recv=r, price=d.p, size=d.q, side="sell" if d.m else "buy",
                         trade_id=str(d.t), seq=d.t)
                    for d, r in zip(datas, recv)]
        return True

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
        except msgspec.DecodeError as exc:
            raise BadFrame(f"undecodable JSON: {exc}") from None
        stream_kind = None
        if env.stream is not None and len(env.data):
            stream_kind = env.stream.partition("@")[2]
            for prefix, reason in _SKIP_STREAM_PREFIX:
                if stream_kind.startswith(prefix):
                    return ParseResult(skipped=reason)
            payload = _any_dec.decode(env.data)
        else:
            payload = _any_dec.decode(data)
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
        if event in _SKIP_EVENTS:
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
