"""Compiled scan of Binance trade frames: raw bytes -> numeric columns + encoded Ticks.

The accelerated twin of the msgspec path (``BinanceAdapter.parse_many`` +
``msgspec.json`` encode of the Tick): pure array code, no I/O, no Python
objects per frame. :func:`scan_trades` walks a chunk of frames (one bytes
buffer + frame offsets) and, for every frame in the *canonical trade layout*,
writes

- the columns the validation rules read (price, size, ts_event, seq, symbol id),
- the exact bytes ``msgspec.json.encode(tick) + b"\\n"`` gives for the Tick
  ``parse`` builds from it (accepted, no flags).

Every other frame gets ``status = FALLBACK`` and is left to the reference path,
which decides what it is (a tick, a skip or a dead letter). So the scan only
ever has to be right about what it accepts; tests/unit/test_binance_scan.py
checks byte equality with the reference on the recordings and on fuzzed frames.

Canonical trade layout (what the venue sends; anything else falls back):
``{"stream":"<ascii>","data":{...}}`` with optional JSON whitespace between
tokens, ``@trade"`` in the first 64 bytes (``parse``'s own test), and a flat
``data`` object holding exactly once each of ``s`` (ASCII letters/digits),
``t`` (integer, at most 18 digits), ``p`` and ``q`` (decimal strings
``\\d+(\\.\\d+)?`` without superfluous leading zeros, at most 15 significant
digits, value 0 or in [1e-5, 1e15)), ``T`` (integer ms, in the range
``parse`` accepts), ``m`` (true/false), optionally ``X`` equal to ``"MARKET"``,
plus any other keys with string (printable ASCII, no escapes), integer,
true/false/null values. Keys carry no escapes.

Why the number handling is exact: a decimal of at most 15 significant digits is
``M / 10**k`` with ``M < 2**53`` and ``k <= 22``, both exact doubles, and one
IEEE division is correctly rounded, so the column holds exactly ``float(raw)``
(what msgspec's correctly rounded parser gives). Fifteen digits round-trip
through a double, so the shortest repr msgspec writes is the decimal with its
trailing fractional zeros removed (``"61837.63000000"`` -> ``61837.63``,
``"100.00"`` -> ``100.0``); msgspec writes plain (non-exponent) notation for
magnitudes in [1e-5, 1e16), which the accepted range stays inside.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from producers.bytescan import (
    decimal, i64_pointer, key_is, put, put_decimal, put_int, skip_ws, string_end, u8_pointer,
    uint_end, uint_value,
)

OK = 0
FALLBACK = 1

MAX_SYMBOLS = 16  # distinct symbols per chunk; frames of further symbols fall back
_MAX_MS = (2**63 - 1) // 1_000_000

# template pieces, in the order the Tick's fields are encoded (see tick_template)
_P_SYMBOL, _P_TS_EVENT, _P_TS_RECV, _P_PRICE, _P_SIZE, _P_SELL, _P_BUY, _P_SEQ, _P_END = range(9)


def tick_template(venue_json: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The constant pieces of an encoded trade Tick, as ``(bytes, offsets)`` arrays.

    ``venue_json`` is the venue name as msgspec encodes it (quotes included)."""
    null_quote = b',"bid":null,"ask":null,"bid_size":null,"ask_size":null,"trade_id":"'
    pieces = [
        b'{"symbol":"',
        b'","venue":' + venue_json + b',"kind":"trade","ts_event":',
        b',"ts_recv":',
        b',"price":',
        b',"size":',
        b',"side":"sell"' + null_quote,
        b',"side":"buy"' + null_quote,
        b'","seq":',
        b',"flags":[]}\n',
    ]
    off = np.zeros(len(pieces) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(p) for p in pieces])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), off


@njit(cache=True, nogil=True)
def _has_trade_marker(buf, a, b):
    """``frame.find(b'@trade"', 0, 64) > 0``, as ``parse`` decides a trade frame."""
    lim = min(b, a + 64) - 7
    for i in range(a, lim + 1):
        if (buf[i] == 64 and buf[i + 1] == 116 and buf[i + 2] == 114 and buf[i + 3] == 97
                and buf[i + 4] == 100 and buf[i + 5] == 101 and buf[i + 6] == 34):
            return i > a
    return False


@njit(cache=True, nogil=True)
def _scan_frame(buf, a, b, fields):
    """One frame: True and ``fields`` (positions, see below) filled if it is in the
    canonical layout. ``fields``: 0,1 symbol; 2,3 t digits; 4,5 p; 6,7 q; 8,9 T
    digits; 10 m (0/1)."""
    if not _has_trade_marker(buf, a, b):
        return False
    p = skip_ws(buf, a, b)
    if p >= b or buf[p] != 123:
        return False
    p = skip_ws(buf, p + 1, b)
    # "stream": "<ascii>"
    if p + 8 > b or buf[p] != 34 or buf[p + 1] != 115 or buf[p + 2] != 116 or buf[p + 3] != 114 \
            or buf[p + 4] != 101 or buf[p + 5] != 97 or buf[p + 6] != 109 or buf[p + 7] != 34:
        return False
    p = skip_ws(buf, p + 8, b)
    if p >= b or buf[p] != 58:
        return False
    p = skip_ws(buf, p + 1, b)
    if p >= b or buf[p] != 34:
        return False
    e = string_end(buf, p + 1, b)
    if e < 0:
        return False
    p = skip_ws(buf, e + 1, b)
    if p >= b or buf[p] != 44:
        return False
    p = skip_ws(buf, p + 1, b)
    # "data": {
    if p + 6 > b or buf[p] != 34 or buf[p + 1] != 100 or buf[p + 2] != 97 or buf[p + 3] != 116 \
            or buf[p + 4] != 97 or buf[p + 5] != 34:
        return False
    p = skip_ws(buf, p + 6, b)
    if p >= b or buf[p] != 58:
        return False
    p = skip_ws(buf, p + 1, b)
    if p >= b or buf[p] != 123:
        return False
    p = skip_ws(buf, p + 1, b)
    seen = 0
    while True:
        if p >= b or buf[p] != 34:
            return False
        ka = p + 1
        kb = string_end(buf, ka, b)
        if kb < 0:
            return False
        p = skip_ws(buf, kb + 1, b)
        if p >= b or buf[p] != 58:
            return False
        p = skip_ws(buf, p + 1, b)
        if p >= b:
            return False
        c = buf[p]
        bit = 0
        if key_is(buf, ka, kb, 115, 0):  # s
            bit = 1
            if c != 34:
                return False
            e = string_end(buf, p + 1, b)
            if e <= p + 1:
                return False
            for i in range(p + 1, e):
                x = buf[i]
                if not (48 <= x <= 57 or 65 <= x <= 90 or 97 <= x <= 122):
                    return False
            fields[0] = p + 1
            fields[1] = e
            p = e + 1
        elif key_is(buf, ka, kb, 116, 0):  # t
            bit = 2
            e = uint_end(buf, p, b, 18)
            if e < 0:
                return False
            fields[2] = p
            fields[3] = e
            p = e
        elif key_is(buf, ka, kb, 112, 0) or key_is(buf, ka, kb, 113, 0):  # p, q
            bit = 4 if buf[ka] == 112 else 8
            if c != 34:
                return False
            e = string_end(buf, p + 1, b)
            if e < 0:
                return False
            slot = 4 if bit == 4 else 6
            fields[slot] = p + 1
            fields[slot + 1] = e
            p = e + 1
        elif key_is(buf, ka, kb, 84, 0):  # T
            bit = 16
            e = uint_end(buf, p, b, 13)
            if e < 0 or uint_value(buf, p, e) > _MAX_MS:
                return False
            fields[8] = p
            fields[9] = e
            p = e
        elif key_is(buf, ka, kb, 109, 0):  # m
            bit = 32
            if p + 4 <= b and c == 116 and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101:
                fields[10] = 1
                p += 4
            elif p + 5 <= b and c == 102 and buf[p + 1] == 97 and buf[p + 2] == 108 \
                    and buf[p + 3] == 115 and buf[p + 4] == 101:
                fields[10] = 0
                p += 5
            else:
                return False
        elif key_is(buf, ka, kb, 88, 0):  # X: only "MARKET" (a tick for both adapters)
            bit = 64
            if p + 8 > b or c != 34 or buf[p + 1] != 77 or buf[p + 2] != 65 or buf[p + 3] != 82 \
                    or buf[p + 4] != 75 or buf[p + 5] != 69 or buf[p + 6] != 84 or buf[p + 7] != 34:
                return False
            p += 8
        else:  # another key: a scalar value is skipped
            if c == 34:
                e = string_end(buf, p + 1, b)
                if e < 0:
                    return False
                p = e + 1
            elif c == 45 or 48 <= c <= 57:
                q = p + 1 if c == 45 else p
                e = uint_end(buf, q, b, 19)
                if e < 0:
                    return False
                p = e
            elif p + 4 <= b and ((c == 116 and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101)
                                 or (c == 110 and buf[p + 1] == 117 and buf[p + 2] == 108
                                     and buf[p + 3] == 108)):
                p += 4
            elif p + 5 <= b and c == 102 and buf[p + 1] == 97 and buf[p + 2] == 108 \
                    and buf[p + 3] == 115 and buf[p + 4] == 101:
                p += 5
            else:
                return False
        if seen & bit:
            return False  # a repeated key: the reference decides which one counts
        seen |= bit
        p = skip_ws(buf, p, b)
        if p >= b:
            return False
        if buf[p] == 44:
            p = skip_ws(buf, p + 1, b)
            continue
        if buf[p] != 125:
            return False
        break
    if seen & 63 != 63:
        return False
    p = skip_ws(buf, p + 1, b)
    if p >= b or buf[p] != 125:
        return False
    return skip_ws(buf, p + 1, b) == b


@njit(cache=True, nogil=True)
def scan_trades(buf, starts, ts_recv, tpl, tpl_off, out,
                status, sym_id, sym_pos, price, size, ts_event, seq, out_off):
    """Scan ``n = len(starts) - 1`` frames ``buf[starts[i]:starts[i+1]]``.

    Writes per frame: ``status`` (OK / FALLBACK), and for OK frames ``sym_id``
    (index into ``sym_pos``, pairs of (start, end) of each distinct raw symbol in
    ``buf``), ``price``, ``size``, ``ts_event`` (ns), ``seq`` and the encoded Tick
    at ``out[out_off[i]:out_off[i+1]]`` (empty for FALLBACK frames). ``out`` must
    hold ``len(buf) + n * (tpl_off[-1] + 60)`` bytes. Returns the number of
    distinct symbols.
    """
    n = len(starts) - 1
    if len(out) < len(buf) + n * (tpl_off[-1] + 64) or len(ts_recv) < n or len(out_off) < n + 1 \
            or starts[n] > len(buf) or min(len(status), len(sym_id), len(price), len(size),
                                           len(ts_event), len(seq)) < n or len(sym_pos) < 2 * MAX_SYMBOLS:
        raise ValueError("scan_trades: output arrays too small")
    buf = u8_pointer(buf.ctypes.data)
    out = u8_pointer(out.ctypes.data)
    tpl = u8_pointer(tpl.ctypes.data)
    fields_owner = np.zeros(11, dtype=np.int64)
    fields = i64_pointer(fields_owner.ctypes.data)
    n_sym = 0
    o = 0
    out_off[0] = 0
    for i in range(n):
        a = starts[i]
        b = starts[i + 1]
        status[i] = FALLBACK
        sym_id[i] = -1
        if _scan_frame(buf, a, b, fields):
            pv, pi, pf = decimal(buf, fields[4], fields[5])
            qv, qi, qf = decimal(buf, fields[6], fields[7])
            if pi >= 0 and qi >= 0:
                # the raw symbol's id (the caller merges spellings of one canonical symbol)
                s0 = fields[0]
                sl = fields[1] - s0
                sid = -1
                for k in range(n_sym):
                    c0 = sym_pos[2 * k]
                    if sym_pos[2 * k + 1] - c0 == sl:
                        same = True
                        for j in range(sl):
                            if buf[c0 + j] != buf[s0 + j]:
                                same = False
                                break
                        if same:
                            sid = k
                            break
                if sid < 0 and n_sym < MAX_SYMBOLS:
                    sid = n_sym
                    sym_pos[2 * sid] = s0
                    sym_pos[2 * sid + 1] = fields[1]
                    n_sym += 1
                if sid >= 0:
                    t = uint_value(buf, fields[2], fields[3])
                    te = uint_value(buf, fields[8], fields[9]) * 1_000_000
                    status[i] = OK
                    sym_id[i] = sid
                    price[i] = pv
                    size[i] = qv
                    ts_event[i] = te
                    seq[i] = t
                    o = put(out, o, tpl, tpl_off[_P_SYMBOL], tpl_off[_P_SYMBOL + 1])
                    for j in range(s0, fields[1]):
                        x = buf[j]
                        out[o] = x - 32 if 97 <= x <= 122 else x
                        o += 1
                    o = put(out, o, tpl, tpl_off[_P_TS_EVENT], tpl_off[_P_TS_EVENT + 1])
                    if te == 0:
                        out[o] = 48
                        o += 1
                    else:  # T ms -> ns: its digits and six zeros
                        o = put(out, o, buf, fields[8], fields[9])
                        for j in range(6):
                            out[o + j] = 48
                        o += 6
                    o = put(out, o, tpl, tpl_off[_P_TS_RECV], tpl_off[_P_TS_RECV + 1])
                    o = put_int(out, o, ts_recv[i])
                    o = put(out, o, tpl, tpl_off[_P_PRICE], tpl_off[_P_PRICE + 1])
                    o = put_decimal(out, o, buf, fields[4], pi, pf)
                    o = put(out, o, tpl, tpl_off[_P_SIZE], tpl_off[_P_SIZE + 1])
                    o = put_decimal(out, o, buf, fields[6], qi, qf)
                    side = _P_SELL if fields[10] == 1 else _P_BUY
                    o = put(out, o, tpl, tpl_off[side], tpl_off[side + 1])
                    o = put(out, o, buf, fields[2], fields[3])
                    o = put(out, o, tpl, tpl_off[_P_SEQ], tpl_off[_P_SEQ + 1])
                    o = put(out, o, buf, fields[2], fields[3])
                    o = put(out, o, tpl, tpl_off[_P_END], tpl_off[_P_END + 1])
        out_off[i + 1] = o
    return n_sym
