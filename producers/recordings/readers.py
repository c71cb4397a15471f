"""Read recorded websocket sessions as ``(ts_recv_ns, raw_frame)`` pairs.

``read_frames(path)`` detects the format from the first meaningful line
(gzip is detected by its magic bytes, not the file name):

``hftbacktest``
    ``<ns since epoch> <raw frame>`` per line (nkaz001/hftbacktest collector).
    A REST depth snapshot line (``{"lastUpdateId": ...}``) is not a websocket
    frame: it is not yielded and is counted in ``ReadStats.snapshots``.
``cryptofeed``
    Line 1 ``<url> <-> <connect time>``; outgoing frames
    ``<url> <- <time>: <json>`` are not yielded (``ReadStats.outgoing``);
    incoming frames ``<unix seconds with fraction>: <raw json>``; the time is
    converted to ns exactly (``Decimal``).
``plain``
    One raw JSON frame per line with no receive time. ``ts_recv`` is, by
    ``plain_clock``: ``"now"`` (default) the wall clock when the line is read,
    as a live socket would stamp it; ``"index"`` the 0-based line number
    (deterministic, for tests and reproducible output).

A line that does not match its format's prefix is not dropped: it is yielded
as a frame (with the previous ``ts_recv``) so the adapter dead-letters it, and
counted in ``ReadStats.malformed``.
"""

from __future__ import annotations

import gzip
import re
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Iterator

GZIP_MAGIC = b"\x1f\x8b"
_HFT = re.compile(rb"(\d{10,20}) (.*)", re.S)
_CF_IN = re.compile(rb"(\d{1,12}(?:\.\d+)?): (.*)", re.S)
_CF_OUT = re.compile(rb"\S+ <- \d+(?:\.\d+)?: ")


@dataclass
class ReadStats:
    format: str = ""
    lines: int = 0
    frames: int = 0
    snapshots: int = 0  # hftbacktest REST snapshot lines (not websocket frames)
    outgoing: int = 0  # cryptofeed frames we sent
    headers: int = 0  # cryptofeed connect lines
    blank: int = 0
    malformed: int = 0  # lines without the expected prefix, passed on as frames

    def to_dict(self) -> dict:
        return asdict(self)


def open_binary(path: str | Path) -> BinaryIO:
    """Open a file for reading bytes, transparently gunzipping by magic bytes."""
    fh = open(path, "rb")
    if fh.read(2) == GZIP_MAGIC:
        fh.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    fh.seek(0)
    return fh


def detect_format(first_line: bytes) -> str:
    line = first_line.strip()
    if b" <-> " in line:
        return "cryptofeed"
    if _HFT.fullmatch(line):
        return "hftbacktest"
    if _CF_IN.fullmatch(line):
        return "cryptofeed"  # a cryptofeed file missing its header line
    return "plain"


def _seconds_to_ns(raw: bytes) -> int | None:
    try:
        seconds = Decimal(raw.decode("ascii"))
        return int(seconds.scaleb(9)) if seconds.adjusted() <= 12 else None  # beyond int64 ns: not a time
    except (ArithmeticError, ValueError):  # decimal errors, bad ASCII (UnicodeDecodeError is a ValueError)
        return None


def read_frames(
    path: str | Path,
    *,
    stats: ReadStats | None = None,
    plain_clock: str = "now",
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(ts_recv_ns, raw_frame_bytes)`` for each websocket frame received."""
    if plain_clock not in ("now", "index"):
        raise ValueError("plain_clock must be 'now' or 'index'")
    st = stats if stats is not None else ReadStats()
    with open_binary(path) as fh:
        fmt = ""
        last_ts = 0
        for index, raw_line in enumerate(fh):
            st.lines += 1
            line = raw_line.rstrip(b"\r\n")
            if not line.strip():
                st.blank += 1
                continue
            if not fmt:
                fmt = st.format = detect_format(line)
            if fmt == "hftbacktest":
                m = _HFT.fullmatch(line)
                if m is None:
                    st.malformed += 1
                    st.frames += 1
                    yield last_ts, line
                    continue
                last_ts = int(m.group(1))
                frame = m.group(2)
                if frame.startswith(b'{"lastUpdateId"'):
                    st.snapshots += 1
                    continue
                st.frames += 1
                yield last_ts, frame
            elif fmt == "cryptofeed":
                m = _CF_IN.fullmatch(line)
                if m is not None:
                    ts = _seconds_to_ns(m.group(1))
                    if ts is not None:
                        last_ts = ts
                        st.frames += 1
                        yield ts, m.group(2)
                        continue
                if b" <-> " in line and st.frames == 0:
                    st.headers += 1
                    continue
                if _CF_OUT.match(line):
                    st.outgoing += 1
                    continue
                st.malformed += 1
                st.frames += 1
                yield last_ts, line
            else:
                ts = time.time_ns() if plain_clock == "now" else index
                st.frames += 1
                yield ts, line
