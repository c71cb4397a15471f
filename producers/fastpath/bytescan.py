"""Byte-scanning primitives for compiled frame parsers (Numba, on raw pointers).

JSON tokens the venue scanners need, exactly or not at all: every function
answers "not in the form I handle" (-1) rather than guess, and the caller
leaves such a frame to the reference parser. Decimals are taken only where
the float and msgspec's shortest repr of it follow from the digits alone
(see :func:`decimal`). The writers produce the bytes msgspec would.

Raw pointers instead of arrays: Numba increments and decrements (atomically)
the reference count of every array passed to a function, ~20 ns a call, more
than scanning a frame costs when every helper gets the buffer; pointers carry
no count, so the helpers stay plain small functions. A pointer is valid while
the array it came from lives (the kernel call's arguments own them); callers
check every index against the frame's end before reading.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_POW10 = np.array([10.0**i for i in range(23)])


def _pointer_intrinsic(item):
    """An intrinsic ``address -> item*`` (``array.ctypes.data`` in, a pointer out)."""
    ptr = types.CPointer(item)

    @intrinsic
    def address_to_pointer(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))

        return ptr(types.intp), codegen

    return address_to_pointer


u8_pointer = _pointer_intrinsic(types.uint8)
i64_pointer = _pointer_intrinsic(types.int64)


@njit(cache=True, nogil=True)
def skip_ws(buf, p, end):
    while p < end:
        c = buf[p]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        p += 1
    return p


@njit(cache=True, nogil=True)
def string_end(buf, p, end):
    """``p`` after an opening quote: the index of the closing quote, or -1 if the
    string holds an escape, a control character or a non-ASCII byte."""
    while p < end:
        c = buf[p]
        if c == 34:
            return p
        if c == 92 or c < 32 or c > 126:
            return -1
        p += 1
    return -1


@njit(cache=True, nogil=True)
def uint_end(buf, p, end, max_digits):
    """End of a canonical unsigned JSON integer at ``p`` (no leading zeros), or -1."""
    q = p
    while q < end and 48 <= buf[q] <= 57:
        q += 1
    n = q - p
    if n == 0 or n > max_digits or (n > 1 and buf[p] == 48):
        return -1
    if q < end and (buf[q] == 46 or buf[q] == 101 or buf[q] == 69):  # a fraction or exponent
        return -1
    return q


@njit(cache=True, nogil=True)
def uint_value(buf, p, q):
    v = 0
    for i in range(p, q):
        v = v * 10 + (buf[i] - 48)
    return v


@njit(cache=True, nogil=True)
def decimal(buf, p, q):
    """A decimal string's content ``buf[p:q]``: ``(value, int_end, frac_end)`` where the
    shortest repr is ``buf[p:int_end]`` + ``.`` + ``buf[int_end+1:frac_end]`` (or ``0``
    when ``frac_end <= int_end + 1``); ``int_end = -1`` when outside the exact domain."""
    i = p
    while i < q and 48 <= buf[i] <= 57:
        i += 1
    n_int = i - p
    if n_int == 0 or n_int > 15 or (n_int > 1 and buf[p] == 48):
        return 0.0, -1, 0
    frac_end = i
    if i < q:
        if buf[i] != 46 or i + 1 == q:
            return 0.0, -1, 0
        j = i + 1
        while j < q and 48 <= buf[j] <= 57:
            if buf[j] != 48:
                frac_end = j + 1
            j += 1
        if j != q:
            return 0.0, -1, 0
    mant = 0
    sig = 0
    for j in range(p, frac_end):
        c = buf[j]
        if c == 46:
            continue
        mant = mant * 10 + (c - 48)
        if mant != 0:
            sig += 1
    if sig > 15:
        return 0.0, -1, 0
    k = frac_end - i - 1 if frac_end > i else 0
    if mant != 0 and n_int == 1 and buf[p] == 48 and k - sig > 4:  # below 1e-5: exponent notation
        return 0.0, -1, 0
    return mant / _POW10[k], i, frac_end


@njit(cache=True, nogil=True)
def put(out, o, src, a, b):
    for i in range(a, b):
        out[o] = src[i]
        o += 1
    return o


@njit(cache=True, nogil=True)
def put_int(out, o, v):
    if v < 0:
        out[o] = 45
        o += 1
        if v == -9223372036854775807 - 1:
            return put_uint(out, o, 9223372036854775808)
        v = -v
    return put_uint(out, o, v)


@njit(cache=True, nogil=True)
def put_uint(out, o, v):
    u = np.uint64(v)  # unsigned: division by a constant without floor corrections
    ten = np.uint64(10)
    n = 1
    x = u
    while x >= ten:
        x //= ten
        n += 1
    for i in range(n - 1, -1, -1):
        out[o + i] = np.uint8(48) + np.uint8(u % ten)
        u //= ten
    return o + n


@njit(cache=True, nogil=True)
def put_decimal(out, o, buf, p, int_end, frac_end):
    o = put(out, o, buf, p, int_end)
    out[o] = 46
    o += 1
    if frac_end > int_end + 1:
        return put(out, o, buf, int_end + 1, frac_end)
    out[o] = 48
    return o + 1


@njit(cache=True, nogil=True)
def expect(buf, p, b, c):
    """The index after the byte ``c`` at ``p`` (after whitespace), or -1."""
    p = skip_ws(buf, p, b)
    if p >= b or buf[p] != c:
        return -1
    return p + 1


@njit(cache=True, nogil=True)
def skip_scalar(buf, p, b):
    """The end of a string (no escapes), integer, true, false or null at ``p``, or -1."""
    c = buf[p]
    if c == 34:
        e = string_end(buf, p + 1, b)
        return -1 if e < 0 else e + 1
    if c == 45 or 48 <= c <= 57:
        return uint_end(buf, p + 1 if c == 45 else p, b, 19)
    if p + 4 <= b and ((c == 116 and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101)
                       or (c == 110 and buf[p + 1] == 117 and buf[p + 2] == 108 and buf[p + 3] == 108)):
        return p + 4
    if p + 5 <= b and c == 102 and buf[p + 1] == 97 and buf[p + 2] == 108 and buf[p + 3] == 115 \
            and buf[p + 4] == 101:
        return p + 5
    return -1
