"""Batch parsing for the Binance adapters: a run of trade frames decoded in one msgspec call.

``BatchParseMixin.parse_many`` returns exactly the ticks ``parse`` gives frame
by frame (fuzz-tested); frames the batch decoder does not accept go through
``parse`` one at a time. Used for file chunks (``ticktide normalize``) and
websocket read bursts.
"""

from __future__ import annotations

import gc
from itertools import repeat
from typing import Annotated

import msgspec

from producers.venues.frames import BadFrame, as_bytes
from schemas.events import Tick

_MAX_MS = (2**63 - 1) // 1_000_000
_MAX_SEQ = 2**63 - 1

_SYMBOLS: dict[str, str] = {}  # venue symbol -> canonical, bounded cache


def _symbol(raw: str) -> str | None:
    """Canonical symbol for the fast paths, or None (the checked path then says why)."""
    if not raw or not raw.isalnum() or not raw.isascii():
        return None
    sym = raw.upper()
    if len(_SYMBOLS) < 10_000:
        _SYMBOLS[raw] = sym
    return sym


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


# a run of trade frames, joined into one JSON array
_trades_dec = msgspec.json.Decoder(list[_CombinedBatchTrade], strict=False)


class BatchParseMixin:
    """``parse_many`` for an adapter that has ``parse``, ``name`` and ``require_market_trades``."""

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
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError, MemoryError):
            # one bad frame (nested too deep, too large) fails the whole run: parse it frame by frame
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
