"""Chunks of Binance frames straight to encoded Ticks (JSON lines), for
``ticktide normalize`` / replay-to-file and anything else that wants bytes out.

Per chunk: the compiled scan (:mod:`producers.binance_scan`) gives, for every
frame in the canonical trade layout, the numeric columns and the encoded Tick;
``Validator.column_prefix`` judges the columns with the rules' vector form and
``Validator.accept_columns`` records the accepted ones (state and quality counts
as ``validate`` leaves them), so no Tick object is built for them. Every other
frame, and every frame from the first one a rule fires on, goes through the
reference path (``normalize_chunk``: ``parse_many`` + ``validate_many`` +
msgspec encode) in frame order, which also keeps the validator's state right.
The result is byte for byte what the reference path writes
(tests/unit/test_binance_encode.py).
"""

from __future__ import annotations

from typing import Callable

import msgspec
import numpy as np

from producers.binance_scan import MAX_SYMBOLS, OK, scan_trades, tick_template

#: Tick fields a scanned trade always has (besides the numeric columns)
_PRESENT = frozenset({"symbol", "venue", "kind", "side", "trade_id", "flags"})
_MIN_RUN = 32  # shorter runs of scanned frames go to the reference path with their neighbours
_RETRY_AFTER_LONG = 1  # frames to the reference path when a rule fires after a long fast run
_RETRY_AFTER_SHORT = 256  # ... after a short one (a stream where rules keep firing)


class TradeEncoder:
    """``encode_chunk(raws, recv, summary) -> (JSON lines, dead letters)`` for one adapter
    and validator (None: no validation), equal to encoding what ``reference`` gives."""

    def __init__(self, adapter, validator, reference: Callable) -> None:
        self.adapter = adapter
        self.validator = validator
        self.reference = reference  # normalize_chunk(adapter, validator, raws, recv, summary)
        self.tpl, self.tpl_off = tick_template(msgspec.json.encode(adapter.name))
        self._record_max = int(self.tpl_off[-1]) + 64  # + the frame's own bytes
        self._lines = msgspec.json.Encoder().encode_lines

    def _ref(self, raws, recv, s) -> tuple[bytes, list]:
        ticks, dead = self.reference(self.adapter, self.validator, raws, recv, s)
        return (self._lines(ticks) if ticks else b""), dead

    def encode_chunk(self, raws: list, recv: list, s) -> tuple[bytes, list]:
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
        cols = {"price": np.empty(n), "size": np.empty(n), "ts_event": np.empty(n, dtype=np.int64),
                "seq": np.empty(n, dtype=np.int64), "ts_recv": recv_a}
        out_off = np.empty(n + 1, dtype=np.int64)
        n_sym = scan_trades(np.frombuffer(buf, dtype=np.uint8), starts, recv_a, self.tpl, self.tpl_off,
                            out, status, sym_id, sym_pos, cols["price"], cols["size"],
                            cols["ts_event"], cols["seq"], out_off)
        # raw spellings -> canonical symbols (two spellings of one symbol share its state)
        canon: dict[str, int] = {}
        ids = [canon.setdefault(buf[sym_pos[2 * k]:sym_pos[2 * k + 1]].decode("ascii").upper(), len(canon))
               for k in range(n_sym)]
        names = list(canon)
        if len(names) < n_sym:
            sym_id = np.array(ids + [0], dtype=np.int64)[sym_id]

        ok = self._long_runs(status == OK)
        if not ok.any():  # e.g. trades interleaved with quotes: one reference call is cheaper
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
                stop = self._accept(pos, end, names, sym_id, cols)
                if stop > pos:
                    pieces.append(mv[out_off[pos]:out_off[stop]])
                    s.ticks += stop - pos
                    s.ticks_by_kind["trade"] += stop - pos
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

    @staticmethod
    def _long_runs(ok: np.ndarray) -> np.ndarray:
        """``ok`` without its runs shorter than ``_MIN_RUN``: a scanned run costs a few
        fixed microseconds (the rules over its columns), more than the reference path
        spends on a few frames, so short runs join the reference segments around them."""
        edges = np.flatnonzero(np.diff(ok.view(np.int8), prepend=0, append=0))
        first, last = edges[0::2], edges[1::2]
        short = last - first < _MIN_RUN
        if not short.any():
            return ok
        d = np.zeros(len(ok) + 1, dtype=np.int64)
        np.add.at(d, first[short], 1)
        np.add.at(d, last[short], -1)
        return ok & (np.cumsum(d[:-1]) == 0)

    def _accept(self, pos: int, end: int, names: list[str], sym_id: np.ndarray, cols: dict) -> int:
        """Accept the longest prefix of frames ``pos:end`` (all scanned) no rule fires on;
        returns where it stops."""
        v = self.validator
        if v is None:
            return end
        if len(names) == 1:
            sub = {f: a[pos:end] for f, a in cols.items()}
            m = v.column_prefix("trade", names[0], sub, end - pos, _PRESENT)
            v.accept_columns("trade", names[0], sub, m)
            return pos + m
        ids = sym_id[pos:end]
        runs = []
        stop = end
        for k, name in enumerate(names):
            idx = np.flatnonzero(ids == k)
            if len(idx) == 0:
                continue
            sub = {f: a[pos:end][idx] for f, a in cols.items()}
            m = v.column_prefix("trade", name, sub, len(idx), _PRESENT)
            if m < len(idx):
                stop = min(stop, pos + int(idx[m]))
            runs.append((name, sub, idx))
        for name, sub, idx in runs:  # symbols are independent: each accepts its rows before `stop`
            v.accept_columns("trade", name, sub, int(np.searchsorted(idx, stop - pos)))
        return stop
