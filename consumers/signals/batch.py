"""The signals consumer's columnar path: a decoded batch of FeatureVectors, the rules in one pass.

Per batch: the rows are grouped by (partition, symbol), the features the
enabled rules read become numpy columns, each built-in rule decides for all
rows at once whether it fires (``consumers.signals.batch_rules``), and only
the rows where something happens are walked in Python, in row order: event
time going back (cooldowns restart), the rules that fired (cooldown, Signal:
``SignalEngine.emit``, the per-row code itself), then the plug-ins, which
are user code over one FeatureVector and so run per row (every row is walked
when any is configured). The output equals ``SignalsProcessor.process`` on
the same inputs: same Signals in the same order, same engine state
afterwards, so the two paths may alternate (the runner takes the Envelope
path right after a restore) and ``SignalEngine`` stays the reference.
"""

from __future__ import annotations

from typing import Callable, Sequence

import msgspec
import numpy as np

from consumers.signals.batch_rules import Rows
from consumers.signals.engine import REWIND_NS, SignalEngine
from schemas.events import FeatureVector, Signal
from schemas.topics import SIGNALS
from streaming.batch import Columns
from streaming.processor import ColumnResult, EncodedOutputs

_encoder = msgspec.json.Encoder()


def process_columns(proc, cols: Columns) -> tuple[ColumnResult, list[Signal]]:
    """``proc`` is the SignalsProcessor (its engines, batch rules, clock); also returns the
    Signals so the processor can count them."""
    now_ns = proc.clock()  # first, as in process(): an injected clock ticks the same on both paths
    result = ColumnResult()
    vectors: list[FeatureVector] = []
    parts: list[int] = []
    for i, (event, part) in enumerate(zip(cols.events or [], cols.partition_of())):
        if isinstance(event, FeatureVector):
            vectors.append(event)
            parts.append(part)
        else:
            result.rejected.append((i, f"expected FeatureVector, got {type(event).__name__}"))
    if not vectors:
        return result, []
    signals = signals_of(vectors, parts, proc.engine, proc.array_rules, now_ns, walk_all=bool(proc.plugins))
    result.last_ts_event = vectors[-1].ts_event
    if signals:
        keys = proc.symbol_keys([s.symbol for s in signals])
        values = _encoder.encode_lines(signals).split(b"\n")[:-1]
        result.outputs.append(EncodedOutputs(SIGNALS.name, keys, values, ingest_ns=[s.ts_ingest for s in signals]))
    return result, signals


def signals_of(vectors: Sequence[FeatureVector], parts: Sequence[int], engine_for: Callable[[int], SignalEngine],
               array_rules: Sequence, now_ns: int, walk_all: bool = False) -> list[Signal]:
    """The Signals of ``vectors`` (``parts``: each one's partition, whose engine holds its state)."""
    keys = list(zip(parts, [v.symbol for v in vectors]))
    group_of = {key: g for g, key in enumerate(dict.fromkeys(keys))}  # numbered by first appearance
    group = list(map(group_of.__getitem__, keys))
    engines = [engine_for(p) for p, _ in group_of]  # created and filled in first-appearance order, as per row
    states = [eng.symbol_state(symbol) for eng, (_, symbol) in zip(engines, group_of)]
    rows = Rows(vectors, group, [f for rule in array_rules for f in rule.features])

    ts = np.array([v.ts_event for v in vectors], dtype=np.int64)
    seen = [st.get("seen") for st in states]
    had_seen = rows.previous(np.ones(len(ts), dtype=bool), [s is not None for s in seen])
    seen_before = rows.previous(ts, [0 if s is None else s for s in seen])
    rewinds = had_seen & (ts < seen_before - REWIND_NS)

    fired, hit_of = [], []
    for arrays in array_rules:
        fires, hit = arrays.evaluate(rows, [st["rules"].setdefault(arrays.rule.name, {}) for st in states])
        fired.append(fires)
        hit_of.append(hit)
    for st, last in zip(states, rows.last_rows.tolist()):
        st["seen"] = vectors[last].ts_event

    # (row, rule) of every hit, by row then rule: the order the per-row engine emits in
    if fired:
        hit_rows, hit_rules = (a.tolist() for a in np.nonzero(np.column_stack(fired)))
    else:
        hit_rows, hit_rules = [], []
    walk = np.ones(len(ts), dtype=bool) if walk_all else rewinds.copy()
    walk[hit_rows] = True
    rewound = set(np.flatnonzero(rewinds).tolist())
    cooldowns = [engines[0].cooldown_ns(a.rule.cooldown_s) for a in array_rules]
    names = [a.rule.name for a in array_rules]  # built-in hits have no type of their own: the rule's
    out: list[Signal] = []
    k = 0
    for i in np.flatnonzero(walk).tolist():
        fv, g = vectors[i], group[i]
        eng, st = engines[g], states[g]
        if i in rewound:
            eng.rewind(fv.symbol, st, int(seen_before[i]) - fv.ts_event)
        while k < len(hit_rows) and hit_rows[k] == i:
            j = hit_rules[k]
            name = names[j]
            # the cooldown first: most hits of a busy stream are suppressed, their text never built
            if not eng.cooling(fv, name, name, cooldowns[j], st["last"]):
                eng.record(fv, name, hit_of[j](i), st["last"], now_ns, out)
            k += 1
        if walk_all:
            eng.run_plugins(fv, st, now_ns, out)
    return out
