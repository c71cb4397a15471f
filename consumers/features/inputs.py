"""Offline inputs for ``ticktide features``: three file shapes, detected from content.

* canonical ticks as JSON lines (``schemas.events.Tick`` encoded by msgspec,
  the output of ``ticktide normalize``): trades and quotes;
* a long bars CSV with the header ``ts,symbol,open,high,low,close,volume``;
* a wide close-price CSV: ``date`` plus one column per symbol, empty cells skipped.

Files ending in ``.gz`` are read through gzip; ``-`` is stdin. Rows that
cannot be used (bad JSON, non-positive price, ...) are skipped and counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import sys
from dataclasses import dataclass, field

import msgspec
import numpy as np

from schemas.events import Tick
from streaming.kernels.layout import KIND_PRICE, KIND_QUOTE
from streaming.tables import TableError, check_unique, parse_dates, sort_order


class InputError(Exception):
    """The file cannot be read as any of the supported shapes."""


@dataclass
class InputTable:
    """One row per usable input record, in file order."""

    format: str  # "ticks" | "bars" | "wide"
    symbols: list[str] = field(default_factory=list)
    ts: list[object] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    x1: list[float] = field(default_factory=list)  # price / close / bid
    x2: list[float] = field(default_factory=list)  # size / volume / ask
    lines: list[int] = field(default_factory=list)  # file line of each row
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)  # the first few skip reasons
    notes: list[str] = field(default_factory=list)  # what was done to the input (e.g. sorted), said once

    def __len__(self) -> int:
        return len(self.symbols)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 5:
            self.reasons.append(reason)

    def add(self, symbol: str, ts: object, kind: int, a: float, b: float, line: int = 0) -> None:
        self.lines.append(line)
        self.symbols.append(symbol)
        self.ts.append(ts)
        self.kinds.append(kind)
        self.x1.append(a)
        self.x2.append(b)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.kinds, dtype=np.int8), np.asarray(self.x1, dtype=np.float64),
                np.asarray(self.x2, dtype=np.float64))


def _open_text(path: str) -> io.TextIOBase:
    if path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, "r", encoding="utf-8", newline="")


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0.0


def _read_ticks(lines, table: InputTable) -> None:
    dec = msgspec.json.Decoder(Tick)
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            t = dec.decode(line)
        except msgspec.MsgspecError as exc:
            table.skip(f"line {no}: {exc}")
            continue
        if t.kind == "trade":
            s = 0.0 if t.size is None else t.size
            if t.price is None or not _positive(t.price) or not (math.isfinite(s) and s >= 0.0):
                table.skip(f"line {no}: trade price/size {t.price!r}/{t.size!r}")
                continue
            table.add(t.symbol, t.ts_event, KIND_PRICE, t.price, s)
        else:
            if t.bid is None or t.ask is None or not (math.isfinite(t.bid) and math.isfinite(t.ask)):
                table.skip(f"line {no}: quote bid/ask {t.bid!r}/{t.ask!r}")
                continue
            table.add(t.symbol, t.ts_event, KIND_QUOTE, t.bid, t.ask)


def _read_bars(reader, header: list[str], table: InputTable) -> None:
    col = {h: i for i, h in enumerate(header)}
    i_ts, i_sym, i_close = col["ts"], col["symbol"], col["close"]
    i_vol = col.get("volume")
    for no, rec in enumerate(reader, 2):
        if not rec:
            continue
        try:
            close = float(rec[i_close])
            vol = float(rec[i_vol]) if i_vol is not None and rec[i_vol] != "" else 0.0
        except (ValueError, IndexError):
            table.skip(f"row {no}: unreadable close/volume")
            continue
        if not _positive(close) or not (math.isfinite(vol) and vol >= 0.0):
            table.skip(f"row {no}: close/volume {close!r}/{vol!r}")
            continue
        table.add(rec[i_sym], rec[i_ts], KIND_PRICE, close, vol, no)


def _read_wide(reader, header: list[str], table: InputTable) -> None:
    symbols = header[1:]
    for no, rec in enumerate(reader, 2):
        if not rec:
            continue
        ts = rec[0]
        for sym, cell in zip(symbols, rec[1:]):
            cell = cell.strip()
            if not cell:
                continue
            try:
                price = float(cell)
            except ValueError:
                table.skip(f"row {no} {sym}: {cell!r}")
                continue
            if not _positive(price):
                table.skip(f"row {no} {sym}: price {price!r}")
                continue
            table.add(sym, ts, KIND_PRICE, price, 0.0, no)


def in_date_order(table: InputTable) -> InputTable:
    """Dates parsed (an unparseable one is an error), no (symbol, date) twice, rows sorted by date
    (stable: a symbol's rows keep their order) with a note when the file was not in order."""
    if not len(table):
        return table
    try:
        days = parse_dates(table.ts, column="date", lines=table.lines)
        check_unique(days, table.symbols, lines=table.lines, shown=table.ts)
    except TableError as exc:
        raise InputError(str(exc)) from None
    order = sort_order(days)
    if order is not None:
        for name in ("symbols", "ts", "kinds", "x1", "x2", "lines"):
            column = getattr(table, name)
            setattr(table, name, [column[i] for i in order])
        table.notes.append(f"the rows were not in date order: sorted {len(table)} rows by date")
    return table


def read_input(path: str) -> InputTable:
    """Read and detect one input file; raises InputError when the shape is unknown."""
    try:
        f = _open_text(path)
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc}") from exc
    with f:
        try:
            return _detect(f, path)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}) (give a CSV or "
                             "JSON-lines file)") from None


def _detect(f, path: str) -> InputTable:
    first = ""
    for line in f:
        if line.strip():
            first = line
            break
    if not first:
        raise InputError(f"{path} is empty")
    if first.lstrip().startswith("{"):
        table = InputTable("ticks")

        def lines():
            yield first
            yield from f

        _read_ticks(lines(), table)
        return table
    header = [h.strip() for h in next(csv.reader([first]))]
    lower = [h.lower() for h in header]
    reader = csv.reader(f)
    if {"ts", "symbol", "close"} <= set(lower):
        table = InputTable("bars")
        _read_bars(reader, lower, table)
        return in_date_order(table)
    if lower and lower[0] in ("date", "ts", "time", "timestamp", "datetime") and len(header) > 1:
        table = InputTable("wide")
        _read_wide(reader, header, table)
        return in_date_order(table)
    raise InputError(
        f"{path}: not canonical tick JSON lines, a bars CSV (ts,symbol,...,close,volume) "
        f"or a wide close CSV (date,<SYMBOL>...); header was {header[:8]}"
    )
