"""Historical price files for the workflow: a wide close CSV or a long OHLCV CSV/Parquet.

- wide: ``date`` (or the first column) plus one close column per symbol; empty
  cells (before a listing) are missing prices;
- long: columns ``date``/``ts``/``timestamp``, ``symbol``, ``close`` and
  optionally ``open``, ``high``, ``low``, ``adj_close``, ``volume`` (the file
  ``ticktide data fetch`` writes); ``.parquet`` files need pyarrow. A symbol
  with adjusted closes is replayed on them (open/high/low scaled by the same
  factor); ``PriceData.price_field`` says which field each symbol used.

A day's bar closes at ``close_time`` UTC (21:00, the New York close); its
``ts_event`` is that instant in ns.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from schemas.events import Bar
from streaming.tables import check_finite, check_unique, parse_dates, sort_order

_DATE_COLUMNS = ("date", "ts", "timestamp", "time", "datetime")


@dataclass
class PriceData:
    close: pd.DataFrame  # index: UTC day, columns: symbols
    ohlcv: dict[str, pd.DataFrame] | None = None  # symbol -> open/high/low/close/volume (long files)
    price_field: dict[str, str] = field(default_factory=dict)  # symbol -> "adj_close" | "close"


def _read_table(path: str) -> pd.DataFrame:
    if path.endswith(".parquet") or path.endswith(".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ValueError(f"reading {path} needs pyarrow: pip install pyarrow ({exc})") from exc
    return pd.read_csv(path)


def _days(values, column: str = "date") -> pd.DatetimeIndex:
    """UTC days; an unparseable date is an error naming its line (header = line 1)."""
    return parse_dates(list(values), column=column).normalize()


def _say_sorted(path: str, days) -> None:
    if sort_order(days) is not None:
        print(f"ticktide workflow run: the rows of {path} were not in date order: sorted them by date",
              file=sys.stderr)


def _adjusted(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Closes replaced by adjusted closes for the symbols that have them, open/high/low scaled alike."""
    if "adj_close" not in df:
        return df, {str(s): "close" for s in df["symbol"].unique()}
    adj = pd.to_numeric(df["adj_close"], errors="coerce")
    has = adj.notna().groupby(df["symbol"]).transform("any")
    use = (has & adj.notna()).to_numpy()
    close = pd.to_numeric(df["close"], errors="coerce")
    factor = np.where(use, adj / close, 1.0)
    df = df.copy()
    for k in ("open", "high", "low"):
        if k in df:
            df[k] = pd.to_numeric(df[k], errors="coerce") * factor
    df["close"] = np.where(use, adj, close)
    fields = {str(s): "adj_close" if bool(h) else "close" for s, h in has.groupby(df["symbol"]).any().items()}
    return df, fields


def load_prices(path: str) -> PriceData:
    return prices_from_frame(_read_table(path), path)


def prices_from_frame(df: pd.DataFrame, path: str = "the fetched bars") -> PriceData:
    """A wide close table or a long bars table (see the module doc) as PriceData; ``path`` names
    the source in what is said about it."""
    cols = {c.lower(): c for c in df.columns}
    date_col = next((cols[c] for c in _DATE_COLUMNS if c in cols), df.columns[0])
    if "symbol" in cols and "close" in cols:
        df = df.rename(columns={v: k for k, v in cols.items()})
        date_col = date_col.lower()
        df["day"] = _days(df[date_col], date_col)
        check_unique(df["day"].dt.strftime("%Y-%m-%d").tolist(), df["symbol"].astype(str).tolist())
        check_finite(df[["close"]].apply(pd.to_numeric, errors="coerce"))
        _say_sorted(path, df["day"])
        df = df.dropna(subset=["close"]).sort_values(["day", "symbol"])
        df, fields = _adjusted(df)
        close = df.pivot_table(index="day", columns="symbol", values="close", aggfunc="last").sort_index()
        ohlcv = {}
        for sym, g in df.groupby("symbol"):
            g = g.set_index("day")
            ohlcv[str(sym)] = pd.DataFrame({
                k: g[k] if k in g else g["close"] for k in ("open", "high", "low", "close")
            }).assign(volume=g["volume"] if "volume" in g else 0.0)
        close.columns = [str(c) for c in close.columns]
        return PriceData(close, ohlcv, fields)
    close = df.set_index(date_col)
    close.index = _days(close.index, str(date_col))
    check_unique(close.index.strftime("%Y-%m-%d").tolist())
    close = close.apply(pd.to_numeric, errors="coerce")
    check_finite(close)
    _say_sorted(path, close.index)
    close = close.sort_index(kind="stable")
    close.columns = [str(c).strip() for c in close.columns]
    return PriceData(close, price_field={str(c): "close" for c in close.columns})


def select(data: PriceData, symbols: list[str], start: str, end: str, warmup: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The close frame for ``symbols`` from ``warmup`` rows before ``start`` to ``end``; and the first day traded."""
    missing = [s for s in symbols if s not in data.close.columns]
    if missing:
        raise ValueError(f"no prices for {', '.join(missing)} in the file")
    px = data.close[symbols].dropna(how="all")
    t0 = pd.Timestamp(start, tz="UTC")
    t1 = pd.Timestamp(end, tz="UTC")
    if t1 < t0:
        raise ValueError("--end is before --start")
    in_window = px.loc[t0:t1]
    if in_window.empty:
        raise ValueError(f"no prices between {start} and {end}")
    before = px.loc[: t0 - pd.Timedelta(days=1)].tail(warmup)
    return pd.concat([before, in_window]), in_window.index[0]


def bars_for_day(data: PriceData, close_row: pd.Series, day: pd.Timestamp, close_time: str = "21:00") -> list[Bar]:
    h, m = (int(x) for x in close_time.split(":"))
    ts = int((day + pd.Timedelta(hours=h, minutes=m)).value)
    bars = []
    for sym, px in close_row.items():
        if pd.isna(px) or px <= 0:
            continue
        o = hi = lo = float(px)
        vol = 0.0
        if data.ohlcv and sym in data.ohlcv and day in data.ohlcv[sym].index:
            r = data.ohlcv[sym].loc[day]
            o, hi, lo, vol = float(r["open"]), float(r["high"]), float(r["low"]), float(r["volume"])
        bars.append(Bar(symbol=str(sym), ts_event=ts, open=o, high=hi, low=lo, close=float(px), volume=vol,
                        interval="1d", source="replay", ts_ingest=ts))
    return bars
