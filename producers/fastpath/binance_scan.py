"""Compiled scan of Binance trade and bookTicker frames: raw bytes -> numeric columns + encoded Ticks.

The accelerated twin of the msgspec path (``BinanceAdapter.parse_many`` +
``msgspec.json`` encode of the Tick): pure array code, no I/O, no Python
objects per frame. :func:`scan_frames` walks a chunk of frames (one bytes
buffer + frame offsets) and, for every frame in the *canonical trade or
bookTicker layout*, writes

- the columns the validation rules read (price and size, or bid, ask and their
  sizes; ts_event, seq, symbol id),
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
true/false/null values. Keys carry no escapes. The bookTicker layout is the
same envelope with ``@bookTicker"`` (and no ``@trade"``) in the first 64 bytes
and ``u`` (integer), ``s``, ``b``, ``B``, ``a``, ``A`` (decimals), optionally
``T`` and ``E`` (integer ms: the event time is ``T``, else ``E``, else the
receive time, as ``parse`` decides).

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

from producers.fastpath.bytescan import (
    decimal, expect, i64_pointer, put, put_decimal, put_int, skip_scalar, skip_ws, string_end,
    u8_pointer, uint_end, uint_value,
)

TRADE = 0
FALLBACK = 1
QUOTE = 2

MAX_SYMBOLS = 16  # distinct symbols per chunk; frames of further symbols fall back
_MAX_MS = (2**63 - 1) // 1_000_000
_FIELDS = 16

# template pieces (see tick_template), in the order the Tick's fields are encoded
(_P_SYMBOL, _P_TRADE_HEAD, _P_TS_RECV, _P_PRICE, _P_SIZE, _P_SELL, _P_BUY, _P_SEQ, _P_END,
 _P_QUOTE_HEAD, _P_BID, _P_ASK, _P_BID_SIZE, _P_ASK_SIZE, _P_QUOTE_SEQ) = range(15)


def tick_template(venue_json: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The constant pieces of encoded trade and quote Ticks, as ``(bytes, offsets)``
    arrays. ``venue_json`` is the venue name as msgspec encodes it (quotes included)."""
    nulls = b',"bid":null,"ask":null,"bid_size":null,"ask_size":null,"trade_id":"'
    pieces = [
        b'{"symbol":"',
        b'","venue":' + venue_json + b',"kind":"trade","ts_event":',
        b',"ts_recv":',
        b',"price":',
        b',"size":',
        b',"side":"sell"' + nulls,
        b',"side":"buy"' + nulls,
        b'","seq":',
        b',"flags":[]}\n',
        b'","venue":' + venue_json + b',"kind":"quote","ts_event":',
        b',"price":null,"size":null,"side":null,"bid":',
        b',"ask":',
        b',"bid_size":',
        b',"ask_size":',
        b',"trade_id":null,"seq":',
    ]
    off = np.zeros(len(pieces) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(p) for p in pieces])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), off


@njit(cache=True, nogil=True)
def _marker_kind(buf, a, b):
    """``parse``'s own dispatch: TRADE if ``frame.find(b'@trade"', 0, 64) > 0``, else
    QUOTE if ``frame.find(b'@bookTicker"', 0, 64) > 0``, else FALLBACK."""
    lim = min(b, a + 64)
    trade_at = -1
    book_at = -1
    for i in range(a, lim):
        if buf[i] != 64:
            continue
        if trade_at < 0 and i + 7 <= lim and buf[i + 1] == 116 and buf[i + 2] == 114 \
                and buf[i + 3] == 97 and buf[i + 4] == 100 and buf[i + 5] == 101 and buf[i + 6] == 34:
            trade_at = i
        if book_at < 0 and i + 12 <= lim and buf[i + 1] == 98 and buf[i + 2] == 111 \
                and buf[i + 3] == 111 and buf[i + 4] == 107 and buf[i + 5] == 84 and buf[i + 6] == 105 \
                and buf[i + 7] == 99 and buf[i + 8] == 107 and buf[i + 9] == 101 and buf[i + 10] == 114 \
                and buf[i + 11] == 34:
            book_at = i
    if trade_at > a:
        return TRADE
    if book_at > a:
        return QUOTE
    return FALLBACK


@njit(cache=True, nogil=True)
def _scan_frame(buf, a, b, fields):
    """One frame: TRADE or QUOTE with ``fields`` (positions) filled if it is in a
    canonical layout, else FALLBACK. ``fields``: 0,1 symbol; trade: 2,3 t digits;
    4,5 p; 6,7 q; 8,9 T digits; 10 m (0/1); quote: 2,3 u digits; 4,5 b; 6,7 B;
    8,9 a; 10,11 A; 12,13 T digits and 14,15 E digits (start -1 when absent)."""
    kind = _marker_kind(buf, a, b)
    if kind == FALLBACK:
        return FALLBACK
    p = expect(buf, a, b, 123)
    # "stream": "<ascii>",
    p = skip_ws(buf, p, b) if p >= 0 else b
    if p + 8 > b or buf[p] != 34 or buf[p + 1] != 115 or buf[p + 2] != 116 or buf[p + 3] != 114 \
            or buf[p + 4] != 101 or buf[p + 5] != 97 or buf[p + 6] != 109 or buf[p + 7] != 34:
        return FALLBACK
    p = expect(buf, p + 8, b, 58)
    p = expect(buf, p, b, 34) if p >= 0 else -1
    if p < 0:
        return FALLBACK
    e = string_end(buf, p, b)
    p = expect(buf, e + 1, b, 44) if e >= 0 else -1
    # "data": {
    p = skip_ws(buf, p, b) if p >= 0 else b
    if p + 6 > b or buf[p] != 34 or buf[p + 1] != 100 or buf[p + 2] != 97 or buf[p + 3] != 116 \
            or buf[p + 4] != 97 or buf[p + 5] != 34:
        return FALLBACK
    p = expect(buf, p + 6, b, 58)
    p = expect(buf, p, b, 123) if p >= 0 else -1
    if p < 0:
        return FALLBACK
    quote = kind == QUOTE
    fields[12] = -1
    fields[14] = -1
    p = skip_ws(buf, p, b)
    seen = 0
    while True:
        if p >= b or buf[p] != 34:
            return FALLBACK
        kb = string_end(buf, p + 1, b)
        if kb < 0:
            return FALLBACK
        k = buf[p + 1] if kb == p + 2 else 0  # the key's only character, or 0
        p = expect(buf, kb + 1, b, 58)
        p = skip_ws(buf, p, b) if p >= 0 else b
        if p >= b:
            return FALLBACK
        c = buf[p]
        bit = 0
        slot = -1  # where a decimal string (or, for ids and times, the digits) goes
        digits = 0  # > 0: an unsigned integer of at most this many digits
        if k == 115:  # s
            bit = 1
            e = string_end(buf, p + 1, b) if c == 34 else -1
            if e <= p + 1:
                return FALLBACK
            for i in range(p + 1, e):
                x = buf[i]
                if not (48 <= x <= 57 or 65 <= x <= 90 or 97 <= x <= 122):
                    return FALLBACK
            fields[0] = p + 1
            fields[1] = e
            p = e + 1
        elif k == 84:  # T
            bit, slot, digits = 64, (12 if quote else 8), 13
        elif not quote and k == 116:  # t
            bit, slot, digits = 2, 2, 18
        elif not quote and (k == 112 or k == 113):  # p, q
            bit, slot = (4, 4) if k == 112 else (8, 6)
        elif not quote and k == 109:  # m
            bit = 16
            if p + 4 <= b and c == 116 and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101:
                fields[10] = 1
                p += 4
            elif p + 5 <= b and c == 102 and buf[p + 1] == 97 and buf[p + 2] == 108 \
                    and buf[p + 3] == 115 and buf[p + 4] == 101:
                fields[10] = 0
                p += 5
            else:
                return FALLBACK
        elif not quote and k == 88:  # X: only "MARKET" (a tick for both adapters)
            bit = 32
            if p + 8 > b or c != 34 or buf[p + 1] != 77 or buf[p + 2] != 65 or buf[p + 3] != 82 \
                    or buf[p + 4] != 75 or buf[p + 5] != 69 or buf[p + 6] != 84 or buf[p + 7] != 34:
                return FALLBACK
            p += 8
        elif quote and k == 117:  # u
            bit, slot, digits = 2, 2, 18
        elif quote and (k == 98 or k == 66 or k == 97 or k == 65):  # b, B, a, A
            bit, slot = ((4, 4) if k == 98 else (8, 6)) if k == 98 or k == 66 else \
                ((16, 8) if k == 97 else (32, 10))
        elif quote and k == 69:  # E
            bit, slot, digits = 128, 14, 13
        else:  # another key: a scalar value is skipped
            p = skip_scalar(buf, p, b)
            if p < 0:
                return FALLBACK
        if slot >= 0:
            if digits:
                e = uint_end(buf, p, b, digits)
                if e < 0 or (digits == 13 and uint_value(buf, p, e) > _MAX_MS):
                    return FALLBACK
                fields[slot] = p
                fields[slot + 1] = e
                p = e
            else:  # a decimal string, checked by the caller
                e = string_end(buf, p + 1, b) if c == 34 else -1
                if e < 0:
                    return FALLBACK
                fields[slot] = p + 1
                fields[slot + 1] = e
                p = e + 1
        if seen & bit:
            return FALLBACK  # a repeated key: the reference decides which one counts
        seen |= bit
        p = skip_ws(buf, p, b)
        if p >= b:
            return FALLBACK
        if buf[p] == 44:
            p = skip_ws(buf, p + 1, b)
            continue
        if buf[p] != 125:
            return FALLBACK
        break
    required = 63 if quote else 95  # quote: s u b B a A; trade: s t p q m T
    if seen & required != required:
        return FALLBACK
    p = expect(buf, p + 1, b, 125)
    if p < 0 or skip_ws(buf, p, b) != b:
        return FALLBACK
    return kind


@njit(cache=True, nogil=True)
def _symbol_id(buf, s0, s1, sym_pos, n_sym):
    """The index of the raw symbol ``buf[s0:s1]`` in ``sym_pos`` (pairs of start, end),
    ``n_sym`` if it is new, -1 if it is new and the table is full."""
    sl = s1 - s0
    for k in range(n_sym):
        c0 = sym_pos[2 * k]
        if sym_pos[2 * k + 1] - c0 == sl:
            same = True
            for j in range(sl):
                if buf[c0 + j] != buf[s0 + j]:
                    same = False
                    break
            if same:
                return k
    return n_sym if n_sym < MAX_SYMBOLS else -1


@njit(cache=True, nogil=True)
def _put_ms_as_ns(out, o, buf, d0, d1):
    """Integer milliseconds (digits ``buf[d0:d1]``, no leading zeros) as nanoseconds."""
    if d1 - d0 == 1 and buf[d0] == 48:
        out[o] = 48
        return o + 1
    o = put(out, o, buf, d0, d1)
    for j in range(6):
        out[o + j] = 48
    return o + 6


@njit(cache=True, nogil=True)
def _put_piece(out, o, tpl, tpl_off, k):
    return put(out, o, tpl, tpl_off[k], tpl_off[k + 1])


@njit(cache=True, nogil=True)
def scan_frames(buf, starts, ts_recv, tpl, tpl_off, out, status, sym_id, sym_pos,
                f0, f1, f2, f3, ts_event, seq, out_off):
    """Scan ``n = len(starts) - 1`` frames ``buf[starts[i]:starts[i+1]]``.

    Writes per frame: ``status`` (TRADE / QUOTE / FALLBACK), and for scanned frames
    ``sym_id`` (index into ``sym_pos``, pairs of (start, end) of each distinct raw
    symbol in ``buf``; -1 for FALLBACK), the float columns (trade: price, size in
    ``f0``, ``f1``; quote: bid, ask, bid size, ask size in ``f0`` to ``f3``),
    ``ts_event`` (ns), ``seq``, and the encoded Tick at ``out[out_off[i]:out_off[i+1]]``
    (empty for FALLBACK). ``out`` must hold ``len(buf) + n * (tpl_off[-1] + 64)``
    bytes. Returns the number of distinct symbols.
    """
    n = len(starts) - 1
    if len(out) < len(buf) + n * (tpl_off[-1] + 64) or len(ts_recv) < n or len(out_off) < n + 1 \
            or starts[n] > len(buf) or len(sym_pos) < 2 * MAX_SYMBOLS \
            or min(len(status), len(sym_id), len(f0), len(f1), len(f2), len(f3), len(ts_event),
                   len(seq)) < n:
        raise ValueError("scan_frames: output arrays too small")
    buf = u8_pointer(buf.ctypes.data)
    out = u8_pointer(out.ctypes.data)
    tpl = u8_pointer(tpl.ctypes.data)
    fields_owner = np.zeros(_FIELDS, dtype=np.int64)
    fd = i64_pointer(fields_owner.ctypes.data)
    n_sym = 0
    o = 0
    out_off[0] = 0
    for i in range(n):
        status[i] = FALLBACK
        sym_id[i] = -1
        kind = _scan_frame(buf, starts[i], starts[i + 1], fd)
        if kind == FALLBACK:
            out_off[i + 1] = o
            continue
        # decimals: value, end of the integer digits, end of the significant fraction
        v0, i0, e0 = decimal(buf, fd[4], fd[5])
        v1, i1, e1 = decimal(buf, fd[6], fd[7])
        v2, i2, e2 = 0.0, 0, 0
        v3, i3, e3 = 0.0, 0, 0
        if kind == QUOTE:
            v2, i2, e2 = decimal(buf, fd[8], fd[9])
            v3, i3, e3 = decimal(buf, fd[10], fd[11])
        sid = _symbol_id(buf, fd[0], fd[1], sym_pos, n_sym)
        if i0 < 0 or i1 < 0 or i2 < 0 or i3 < 0 or sid < 0:
            out_off[i + 1] = o
            continue
        if sid == n_sym:
            sym_pos[2 * sid] = fd[0]
            sym_pos[2 * sid + 1] = fd[1]
            n_sym += 1
        status[i] = kind
        sym_id[i] = sid
        seq[i] = uint_value(buf, fd[2], fd[3])
        o = _put_piece(out, o, tpl, tpl_off, _P_SYMBOL)
        for j in range(fd[0], fd[1]):
            x = buf[j]
            out[o] = x - 32 if 97 <= x <= 122 else x
            o += 1
        if kind == TRADE:
            f0[i] = v0
            f1[i] = v1
            ts_event[i] = uint_value(buf, fd[8], fd[9]) * 1_000_000
            o = _put_piece(out, o, tpl, tpl_off, _P_TRADE_HEAD)
            o = _put_ms_as_ns(out, o, buf, fd[8], fd[9])
            o = _put_piece(out, o, tpl, tpl_off, _P_TS_RECV)
            o = put_int(out, o, ts_recv[i])
            o = _put_piece(out, o, tpl, tpl_off, _P_PRICE)
            o = put_decimal(out, o, buf, fd[4], i0, e0)
            o = _put_piece(out, o, tpl, tpl_off, _P_SIZE)
            o = put_decimal(out, o, buf, fd[6], i1, e1)
            o = _put_piece(out, o, tpl, tpl_off, _P_SELL if fd[10] == 1 else _P_BUY)
            o = put(out, o, buf, fd[2], fd[3])
            o = _put_piece(out, o, tpl, tpl_off, _P_SEQ)
        else:
            f0[i] = v0  # bid
            f1[i] = v2  # ask
            f2[i] = v1  # bid size
            f3[i] = v3  # ask size
            o = _put_piece(out, o, tpl, tpl_off, _P_QUOTE_HEAD)
            t0 = fd[12] if fd[12] >= 0 else fd[14]  # T, else E, else the receive time
            if t0 >= 0:
                t1 = fd[13] if fd[12] >= 0 else fd[15]
                ts_event[i] = uint_value(buf, t0, t1) * 1_000_000
                o = _put_ms_as_ns(out, o, buf, t0, t1)
            else:
                ts_event[i] = ts_recv[i]
                o = put_int(out, o, ts_recv[i])
            o = _put_piece(out, o, tpl, tpl_off, _P_TS_RECV)
            o = put_int(out, o, ts_recv[i])
            o = _put_piece(out, o, tpl, tpl_off, _P_BID)
            o = put_decimal(out, o, buf, fd[4], i0, e0)
            o = _put_piece(out, o, tpl, tpl_off, _P_ASK)
            o = put_decimal(out, o, buf, fd[8], i2, e2)
            o = _put_piece(out, o, tpl, tpl_off, _P_BID_SIZE)
            o = put_decimal(out, o, buf, fd[6], i1, e1)
            o = _put_piece(out, o, tpl, tpl_off, _P_ASK_SIZE)
            o = put_decimal(out, o, buf, fd[10], i3, e3)
            o = _put_piece(out, o, tpl, tpl_off, _P_QUOTE_SEQ)
        o = put(out, o, buf, fd[2], fd[3])
        o = _put_piece(out, o, tpl, tpl_off, _P_END)
        out_off[i + 1] = o
    return n_sym
