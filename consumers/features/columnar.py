"""The features consumer's columnar path: a decoded batch straight into one kernel call.

For a batch of trade ticks (the live stream) the work per tick is a few list
comprehensions, numpy masks for validation, one ``FeatureEngine.update`` and
the bulk encoder; no Envelope, values dict or FeatureVector per tick. Any
other batch (bars, quotes) goes through ``FeaturesProcessor.process`` and is
encoded per message: the same outputs, just slower.
"""

from __future__ import annotations

import math

import numpy as np

from schemas.events import Tick
from streaming.batch import Columns
from streaming.codec import encode
from streaming.kernels.layout import H_COUNT, KIND_PRICE
from streaming.processor import ColumnResult, EncodedOutputs, Envelope

NAN = math.nan


def _all_trades(events: list) -> bool:
    return all(type(e) is Tick and e.kind == "trade" for e in events)


def process_columns(proc, cols: Columns) -> ColumnResult:
    events = cols.events or []
    if not events:
        return ColumnResult()
    if not _all_trades(events):
        return _through_envelopes(proc, cols)
    parts = cols.partition_of()
    _note_offsets(proc, cols)
    price = np.array([NAN if e.price is None else e.price for e in events], dtype=np.float64)
    size = np.array([0.0 if e.size is None else e.size for e in events], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(price) & (price > 0.0)) | ~(np.isfinite(size) & (size >= 0.0))
    result = ColumnResult()
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            e = events[i]
            ok_price = e.price is not None and math.isfinite(e.price) and e.price > 0.0
            result.rejected.append((i, f"trade price {e.price!r} is not a positive number" if not ok_price
                                    else f"trade size {e.size!r} is not a non-negative number"))
        keep = np.flatnonzero(~bad)
        kept = keep.tolist()
        events = [events[i] for i in kept]
        parts = [parts[i] for i in kept]
        price, size = price[keep], size[keep]
        if not events:
            return result
    symbols = [e.symbol for e in events]
    row_of = {}
    for sym, part in dict(zip(symbols, parts)).items():  # a symbol comes on one partition (keyed)
        row_of[sym] = proc.row_for(part, ("tick", sym, ""))
    rows = np.array([row_of[s] for s in symbols], dtype=np.int64)
    before = proc.engine.state[rows, H_COUNT].astype(np.int64)  # prices seen before this batch
    out = proc.engine.update(np.full(len(rows), KIND_PRICE, dtype=np.int8), rows, price, size)
    seq = before + _running_count(rows)
    for sym, part in dict(zip(symbols, parts)).items():
        proc.mark_dirty(part, ("tick", sym, ""))
    emit = slice(None) if proc.emit_every == 1 else np.flatnonzero(seq % proc.emit_every == 0)
    if proc.emit_every != 1:
        idx = emit.tolist()
        events = [events[i] for i in idx]
        symbols = [symbols[i] for i in idx]
    seqs = seq[emit].tolist()
    ts_ingest = [e.ts_recv for e in events]
    values = proc.encoder.encode(symbols, [e.ts_event for e in events], ts_ingest, proc.clock(), seqs, "tick",
                                 price[emit].tolist(), out[emit].tolist())
    keys = proc.symbol_keys(symbols)
    result.outputs.append(EncodedOutputs(proc.output_topic, keys, values, ingest_ns=ts_ingest))
    result.last_ts_event = events[-1].ts_event if events else 0
    return result


def _running_count(rows: np.ndarray) -> np.ndarray:
    """For each position, how many times its row occurred up to and including it."""
    n = rows.shape[0]
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    lengths = np.diff(np.r_[starts, n])
    within = np.arange(n) - np.repeat(starts, lengths)
    count = np.empty(n, dtype=np.int64)
    count[order] = within + 1
    return count


def _note_offsets(proc, cols: Columns) -> None:
    for s in cols.segments:
        nxt = proc._next.setdefault(s.partition, {})
        last = cols.offsets[s.stop - 1] + 1
        if last > nxt.get(s.topic, -1):
            nxt[s.topic] = last


def _through_envelopes(proc, cols: Columns) -> ColumnResult:
    envelopes = [Envelope(s.topic, s.partition, cols.offsets[i], cols.keys[i], cols.events[i])
                 for s in cols.segments for i in range(s.start, s.stop)]
    row_of = {id(env): i for i, env in enumerate(envelopes)}
    res = proc.process(envelopes)
    result = ColumnResult(rejected=[(row_of[id(env)], reason) for env, reason in res.rejected])
    by_topic: dict[str, EncodedOutputs] = {}
    for o in res.outputs:
        enc = by_topic.setdefault(o.topic, EncodedOutputs(o.topic, [], [], ingest_ns=[]))
        enc.keys.append(o.key)
        enc.values.append(encode(o.event))
        enc.ingest_ns.append(o.event.ts_ingest)
    result.outputs = list(by_topic.values())
    last = getattr(envelopes[-1].event, "ts_event", 0) if envelopes else 0
    result.last_ts_event = last or 0
    return result
