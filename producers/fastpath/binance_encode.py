"""Chunks of Binance frames straight to encoded Ticks (JSON lines), for
``ticktide normalize`` and anything else that wants bytes out.

Per chunk: the compiled scan (:mod:`producers.fastpath.binance_scan`) gives, for every
frame in the canonical trade or bookTicker layout, the numeric columns and the
encoded Tick; ``Validator.column_prefix`` judges the columns of each (kind,
symbol) with the rules' vector form and ``Validator.accept_columns`` records
the accepted ones (state and quality counts as ``validate`` leaves them), so no
Tick object is built for them. Every other frame, and every frame from the
first one a rule fires on, goes through the reference path (``normalize_chunk``:
``parse_many`` + ``validate_many`` + msgspec encode) in frame order, which also
keeps the validator's state right. The result is byte for byte what the
reference path writes (tests/unit/test_binance_scan.py).
"""

from __future__ import annotations

import logging
from typing import Callable

import msgspec
import numpy as np

from producers.fastpath.binance_scan import FALLBACK, MAX_SYMBOLS, QUOTE, scan_frames, tick_template

log = logging.getLogger(__name__)

#: per kind: the float columns the scan fills (in order) and the other Tick fields
#: a scanned tick always has (non-null)
_FLOATS = {"trade": ("price", "size"), "quote": ("bid", "ask", "bid_size", "ask_size")}
_PRESENT = {"trade": frozenset({"symbol", "venue", "kind", "side", "trade_id", "flags"}),
            "quote": frozenset({"symbol", "venue", "kind", "flags"})}
_MIN_RUN = 32  # shorter runs of scanned frames go to the reference path with their neighbours
_RETRY_AFTER_LONG = 1  # frames to the reference path when a rule fires after a long fast run
_RETRY_AFTER_SHORT = 256  # ... after a short one (a stream where rules keep firing)

_PROBE_TRADE = ('{"stream":"%s@trade","data":{"e":"trade","E":1723161255343,"s":"%s","t":%d,'
                '"p":"%s","q":"%s","T":1723161255342,"m":%s,"M":true}}')
_PROBE_QUOTE = ('{"stream":"%s@bookTicker","data":{"u":%d,"s":"%s","b":"%s","B":"%s","a":"%s",'
                '"A":"%s"%s}}')
_PROBE_FRAMES = [
    _PROBE_TRADE % ("btcusdt", "btcusdt", 3735683259, "61837.63000000", "0.02000000", "true"),
    _PROBE_TRADE % ("btcusdt", "BTCUSDT", 0, "100.00", "0.00001000", "false"),
    _PROBE_TRADE % ("ethusdt", "ETHUSDT", 1, "123456789012345", "0.00012345678901", "true"),
    _PROBE_TRADE % ("ethusdt", "ethusdt", 10**17 + 3, "0.00000000", "99999999999999.9", "false"),
    _PROBE_QUOTE % ("btcusdt", 7, "BTCUSDT", "61837.63", "1.00000000", "61837.64", "0.5", ""),
    _PROBE_QUOTE % ("x1", 0, "x1", "1", "0.00001", "2.50", "10", ',"T":1723161255342,"E":1'),
    _PROBE_QUOTE % ("x1", 9, "x1", "0", "0", "0.0", "0.0", ',"E":0'),
]
_PROBED: dict[str, bool] = {}


def _agrees_with_msgspec(encoder: "ChunkEncoder") -> bool:
    """``encoder._probe()`` once per venue name; False (the reference path then runs
    every frame) is logged, since it means msgspec or the Tick changed under the scan."""
    name = encoder.adapter.name
    if name not in _PROBED:
        _PROBED[name] = encoder._probe()
        if not _PROBED[name]:
            log.warning("%s: the compiled frame scan disagrees with msgspec %s on its probe "
                        "frames; using the reference path", name, msgspec.__version__)
    return _PROBED[name]


class ChunkEncoder:
    """``encode_chunk(raws, recv, summary) -> (JSON lines, dead letters)`` for one adapter
    and validator (None: no validation), equal to encoding what ``reference`` gives.
    Trades and bookTicker quotes take the compiled scan."""

    def __init__(self, adapter, validator, reference: Callable) -> None:
        self.adapter = adapter
        self.validator = validator
        self.reference = reference  # normalize_chunk(adapter, validator, raws, recv, summary)
        self.tpl, self.tpl_off = tick_template(msgspec.json.encode(adapter.name))
        self._record_max = int(self.tpl_off[-1]) + 64  # + the frame's own bytes
        self._lines = msgspec.json.Encoder().encode_lines
        self.scanned = 0
        self.enabled = _agrees_with_msgspec(self)
        self.scanned = 0  # frames written by the scan (the rest went the reference path)

    def _probe(self) -> bool:
        """The scan writes exactly what the reference writes for a set of probe frames
        (number formats, sides, symbol spellings, times, both kinds): the Tick layout
        and msgspec's float format are re-derived here, not assumed to stay fixed."""
        from producers.outcomes import Summary

        frames = [f.encode() for f in _PROBE_FRAMES]
        recv = [1_723_161_255_342_123_456, 0, -5, 2**63 - 1, 7, 8, 9][:len(frames)]
        got, _ = self._scan_chunk(frames, recv, Summary(), validate=False, min_run=1)
        if self.scanned != len(frames):
            return False
        want = b"".join(self._lines(t) for f, r in zip(frames, recv)
                        for t in [self.adapter.parse(f, r).ticks] if t)
        return got == want

    def _ref(self, raws, recv, s) -> tuple[bytes, list]:
        ticks, dead = self.reference(self.adapter, self.validator, raws, recv, s)
        return (self._lines(ticks) if ticks else b""), dead

    def encode_chunk(self, raws: list, recv: list, s) -> tuple[bytes, list]:
        if not self.enabled:
            return self._ref(raws, recv, s) if raws else (b"", [])
        return self._scan_chunk(raws, recv, s)

    def _scan_chunk(self, raws: list, recv: list, s, validate: bool = True,
                    min_run: int = _MIN_RUN) -> tuple[bytes, list]:
        n = len(raws)
        if n == 0:
            return b"", []
        try:
            buf = b"".join(raws)
        except TypeError:  # str frames
            return self._ref(raws, recv, s)
        recv_a = np.array(recv)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, raws), np.int64, n), out=starts[1:])
        if recv_a.dtype != np.int64 or recv_a.shape != (n,) or starts[-1] != len(buf):
            # receive times that are not all int64 (bools, floats, beyond 64 bits), or
            # bytes-likes whose len is not their size in bytes
            return self._ref(raws, recv, s)
        out = np.empty(len(buf) + n * self._record_max, dtype=np.uint8)
        status = np.empty(n, dtype=np.int8)
        sym_id = np.empty(n, dtype=np.int64)
        sym_pos = np.empty(2 * MAX_SYMBOLS, dtype=np.int64)
        floats = [np.empty(n) for _ in range(4)]
        ts_event = np.empty(n, dtype=np.int64)
        seq = np.empty(n, dtype=np.int64)
        out_off = np.empty(n + 1, dtype=np.int64)
        n_sym = scan_frames(np.frombuffer(buf, dtype=np.uint8), starts, recv_a, self.tpl, self.tpl_off,
                            out, status, sym_id, sym_pos, *floats, ts_event, seq, out_off)
        # raw spellings -> canonical symbols (two spellings of one symbol share its state)
        canon: dict[str, int] = {}
        ids = [canon.setdefault(buf[sym_pos[2 * k]:sym_pos[2 * k + 1]].decode("ascii").upper(), len(canon))
               for k in range(n_sym)]
        names = list(canon)
        if len(names) < n_sym:
            sym_id = np.array(ids + [0], dtype=np.int64)[sym_id]
        is_quote = status == QUOTE
        # one key per (symbol, kind): the validator's state is per kind and symbol
        keys = sym_id * 2 + is_quote
        cols = {"ts_event": ts_event, "seq": seq, "ts_recv": recv_a}

        scanned = status != FALLBACK
        if not scanned.any():
            return self._ref(raws, recv, s)
        # frames the scan left that give no tick (depth updates, acks, errors) touch no
        # validation state: parsed here, they need not break a run of scanned frames
        inert: dict[int, object] = {}
        parse = self.adapter.parse
        for i in np.flatnonzero(~scanned).tolist():
            res = parse(raws[i], recv[i])
            if not res.ticks:
                inert[i] = res
        passable = scanned.copy()
        if inert:
            passable[list(inert)] = True
            keys[list(inert)] = -1
        ok = self._long_runs(passable, min_run)
        if not ok.any():  # e.g. trades interleaved with frames that give ticks
            return self._ref(raws, recv, s)
        mv = out.data
        pieces: list = []
        dead: list = []
        last_fast = _RETRY_AFTER_SHORT
        pos = 0
        while pos < n:
            rest = ok[pos:]
            if rest[0]:
                k = int(rest.argmin())
                end = n if rest[k] else pos + k
                stop = self._accept(pos, end, names, keys, cols, floats) if validate else end
                if stop > pos:
                    pieces.append(mv[out_off[pos]:out_off[stop]])
                    ticks = int(np.count_nonzero(scanned[pos:stop]))
                    quotes = int(np.count_nonzero(is_quote[pos:stop]))
                    s.ticks += ticks
                    if quotes < ticks:
                        s.ticks_by_kind["trade"] += ticks - quotes
                    if quotes:
                        s.ticks_by_kind["quote"] += quotes
                    if ticks < stop - pos:
                        self._inert_outcomes(pos, stop, inert, raws, s, dead)
                    self.scanned += ticks
                    last_fast = stop - pos
                    pos = stop
                    continue
                # a rule fires on frame `pos` (or the columns cannot be judged exactly)
                end = min(end, pos + (_RETRY_AFTER_LONG if last_fast >= 64 else _RETRY_AFTER_SHORT))
                last_fast = 0
            else:
                k = int(rest.argmax())
                end = pos + k if rest[k] else n
            lines, letters = self._ref(raws[pos:end], recv[pos:end], s)
            pieces.append(lines)
            dead += letters
            pos = end
        return b"".join(pieces), dead

    def _inert_outcomes(self, pos: int, stop: int, inert: dict, raws: list, s, dead: list) -> None:
        """Count the skips and dead-letter the errors among frames ``pos:stop``, in order."""
        from producers.outcomes import dead_letter

        name = self.adapter.name
        for i in range(pos, stop):
            res = inert.get(i)
            if res is None:
                continue
            if res.error is not None:
                s.parse_errors += 1
                s.dead_letters += 1
                dead.append(dead_letter(name, f"producer:{name}", res.error, raws[i]))
            else:
                s.skipped[res.skipped or "unspecified"] += 1

    @staticmethod
    def _long_runs(ok: np.ndarray, min_run: int) -> np.ndarray:
        """``ok`` without its runs shorter than ``min_run``: a scanned run costs a few
        fixed microseconds (the rules over its columns), more than the reference path
        spends on a few frames, so short runs join the reference segments around them."""
        edges = np.flatnonzero(np.diff(ok.view(np.int8), prepend=0, append=0))
        first, last = edges[0::2], edges[1::2]
        short = last - first < min_run
        if not short.any():
            return ok
        d = np.zeros(len(ok) + 1, dtype=np.int64)
        np.add.at(d, first[short], 1)
        np.add.at(d, last[short], -1)
        return ok & (np.cumsum(d[:-1]) == 0)

    def _accept(self, pos: int, end: int, names: list[str], keys: np.ndarray, cols: dict,
                floats: list) -> int:
        """Accept the longest prefix of frames ``pos:end`` (all scanned) no rule fires on;
        returns where it stops. Each (symbol, kind) is judged on its own rows (their
        state is theirs alone); the prefix ends at the first row any of them stops at."""
        v = self.validator
        if v is None:
            return end
        ks = keys[pos:end]  # -1: a frame that gives no tick
        k0 = int(ks[0])
        uniform = k0 >= 0 and bool((ks == k0).all())
        groups = [(k0, None)] if uniform else \
            [(int(k), np.flatnonzero(ks == k)) for k in np.unique(ks) if k >= 0]
        runs = []
        stop = end
        for key, idx in groups:
            kind = "quote" if key & 1 else "trade"
            sub = {f: a[pos:end] if idx is None else a[pos:end][idx] for f, a in cols.items()}
            for f, a in zip(_FLOATS[kind], floats):
                sub[f] = a[pos:end] if idx is None else a[pos:end][idx]
            rows = end - pos if idx is None else len(idx)
            m = v.column_prefix(kind, names[key >> 1], sub, rows, _PRESENT[kind])
            if m < rows:
                stop = min(stop, pos + (m if idx is None else int(idx[m])))
            runs.append((kind, names[key >> 1], sub, idx))
        # each accepts its rows before `stop`, the one with the latest row last: a
        # symbol's quality counts remember the receive time of its latest tick
        accepted = []
        for kind, name, sub, idx in runs:
            count = stop - pos if idx is None else int(np.searchsorted(idx, stop - pos))
            if count:
                accepted.append((count - 1 if idx is None else int(idx[count - 1]), kind, name, sub, count))
        for _, kind, name, sub, count in sorted(accepted, key=lambda r: r[0]):
            v.accept_columns(kind, name, sub, count)
        return stop
