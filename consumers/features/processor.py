"""FeaturesProcessor: per-symbol rolling features from ticks and bars.

Trades (price, size) and bars (close, volume) update every feature; quotes
only update ``mid`` and ``spread``. State lives in one ``FeatureEngine``
(one float64 row per state key); a batch is decoded into arrays in Python and
processed by one compiled call.

State keys: ``("tick", symbol, "")`` for ticks and ``("bar", symbol, interval)``
for bars, so a symbol's trade stream and its daily bars never mix. A
``FeatureVector``'s ``seq`` is the number of prices (trades or bars) that
state has processed, quotes excluded.

Emission: a FeatureVector for every ``emit_every``-th trade of a symbol
(``seq % emit_every == 0``, so it survives restarts), for every bar
(``emit_bars``), and for quotes only when ``emit_quotes``.

Snapshots: the runner writes one changelog record per state key that changed
(``dirty_items``: ``"tick|BTCUSDT|"``, ``"bar|AAPL|1d"``), the row bit for bit,
so a snapshot is proportional to what changed and stays far below the
broker's record limit with thousands of symbols. ``snapshot``/``restore`` of a
whole partition remain for tools and tests.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import msgspec
import numpy as np

from schemas.events import Bar, FeatureVector, Tick
from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import FeatureEngine
from streaming.kernels.warm import warm
from streaming.kernels.layout import KIND_PRICE, KIND_QUOTE
from consumers.features.columnar import process_columns
from consumers.features.encoding import VectorEncoder
from streaming.batch import Columns
from streaming.processor import ColumnResult, Envelope, Output, ProcessResult, Processor

SNAPSHOT_VERSION = 1


class SymbolState(msgspec.Struct, array_like=True):
    source: str  # "tick" | "bar"
    symbol: str
    interval: str
    state: bytes  # the engine row, float64 little-endian


class PartitionState(msgspec.Struct):
    version: int
    config: str  # FeatureConfig fingerprint: the row layout depends on it
    width: int
    next_offsets: dict[str, int]  # per input topic: the next offset to read
    symbols: list[SymbolState]


class ItemState(msgspec.Struct, array_like=True):
    version: int
    config: str
    width: int
    state: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(PartitionState)
_item_decoder = msgspec.msgpack.Decoder(ItemState)


def item_name(key: tuple[str, str, str]) -> str:
    return "|".join(key)


def _check_snapshot(version: int, config: str, width: int, expected: FeatureConfig, expected_width: int) -> None:
    """A snapshot this code cannot read is refused with what to do, never misread."""
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"features snapshot version {version} is not {SNAPSHOT_VERSION}")
    fingerprint = expected.fingerprint()
    if config == fingerprint and width == expected_width:
        return
    old = config.split(":", 1)[0] if config.startswith("layout") else "layout1"
    new = fingerprint.split(":", 1)[0]
    if old != new:
        raise ValueError(
            f"features state in the changelog was written with state {old}, this version reads "
            f"{new} (layout 3: EMA/MACD seeded the TA-Lib way, null during warm-up); no migration: "
            "delete the group's features changelog (changelog.<group>.features.v2) so the state is rebuilt "
            "from the inputs")
    raise ValueError("features snapshot was written with another FeatureConfig")


class FeaturesProcessor(Processor):
    name = "features"
    inputs = ("ticks.v1", "bars.v1")
    stateful = True
    columnar = True
    output_topic = "features.v1"
    outputs = (output_topic,)

    def __init__(
        self,
        config: FeatureConfig | None = None,
        *,
        emit_every: int = 1,
        emit_bars: bool = True,
        emit_quotes: bool = False,
        clock: Callable[[], int] = time.time_ns,
        capacity: int = 64,
    ):
        if emit_every < 1:
            raise ValueError("emit_every must be >= 1")
        self.config = config or FeatureConfig()
        self.engine = FeatureEngine(self.config, capacity=capacity)
        self.names = self.engine.names
        self.emit_every = emit_every
        self.emit_bars = emit_bars
        self.emit_quotes = emit_quotes
        self.clock = clock
        self._keys_of: dict[int, set[tuple[str, str, str]]] = {}
        self._dirty_keys: dict[int, set[tuple[str, str, str]]] = {}
        self._next: dict[int, dict[str, int]] = {}
        self.encoder = VectorEncoder(self.names)
        self._symbol_keys: dict[str, bytes] = {}

    def warm_up(self) -> None:
        """Compile the kernels or load them from Numba's cache before the runner joins its group."""
        warm(self.config)

    def process_columns(self, batch: Columns) -> ColumnResult:
        return process_columns(self, batch)

    def row_for(self, partition: int, key: tuple[str, str, str]) -> int:
        row = self.engine.row_of(key)
        if row is None:
            row = self.engine.add_symbol(key)
            self._keys_of.setdefault(partition, set()).add(key)
        return row

    def mark_dirty(self, partition: int, key: tuple[str, str, str]) -> None:
        self._dirty_keys.setdefault(partition, set()).add(key)

    def symbol_keys(self, symbols: list[str]) -> list[bytes]:
        """The record keys (the symbol's UTF-8), each symbol encoded once."""
        cache = self._symbol_keys
        for sym in set(symbols) - cache.keys():
            cache[sym] = sym.encode()
        return [cache[s] for s in symbols]

    # -- processing ------------------------------------------------------------
    def _key(self, env: Envelope, key: tuple[str, str, str]) -> int:
        return self.row_for(env.partition, key)

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        n = len(batch)
        if n == 0:
            return result
        kinds = np.empty(n, dtype=np.int8)
        rows = np.empty(n, dtype=np.int64)
        x1 = np.empty(n, dtype=np.float64)
        x2 = np.empty(n, dtype=np.float64)
        accepted: list[tuple[Envelope, int, int, bool]] = []  # env, row, seq, emit
        counts: dict[int, int] = {}
        m = 0
        for env in batch:
            nxt = self._next.setdefault(env.partition, {})
            if env.offset + 1 > nxt.get(env.topic, -1):
                nxt[env.topic] = env.offset + 1
            ev = env.event
            if isinstance(ev, Tick):
                if ev.kind == "trade":
                    p, s = ev.price, ev.size
                    if p is None or not math.isfinite(p) or p <= 0.0:
                        result.rejected.append((env, f"trade price {p!r} is not a positive number"))
                        continue
                    if s is None:
                        s = 0.0
                    elif not math.isfinite(s) or s < 0.0:
                        result.rejected.append((env, f"trade size {s!r} is not a non-negative number"))
                        continue
                    kind, a, b = KIND_PRICE, p, s
                else:
                    bid, ask = ev.bid, ev.ask
                    if bid is None or ask is None or not (math.isfinite(bid) and math.isfinite(ask)):
                        result.rejected.append((env, f"quote needs finite bid and ask, got {bid!r}/{ask!r}"))
                        continue
                    kind, a, b = KIND_QUOTE, bid, ask
                key = ("tick", ev.symbol, "")
            elif isinstance(ev, Bar):
                p, s = ev.close, ev.volume
                if not math.isfinite(p) or p <= 0.0:
                    result.rejected.append((env, f"bar close {p!r} is not a positive number"))
                    continue
                if not math.isfinite(s) or s < 0.0:
                    result.rejected.append((env, f"bar volume {s!r} is not a non-negative number"))
                    continue
                kind, a, b = KIND_PRICE, p, s
                key = ("bar", ev.symbol, ev.interval)
            else:
                result.rejected.append((env, f"unexpected event type {type(ev).__name__}"))
                continue
            row = self._key(env, key)
            seq = counts.get(row)
            if seq is None:
                seq = self.engine.count(row)
            if kind == KIND_PRICE:
                seq += 1
                counts[row] = seq
                emit = self.emit_bars if key[0] == "bar" else seq % self.emit_every == 0
            else:
                counts[row] = seq
                emit = self.emit_quotes
            kinds[m] = kind
            rows[m] = row
            x1[m] = a
            x2[m] = b
            accepted.append((env, row, seq, emit))
            m += 1
        if m == 0:
            return result
        out = self.engine.update(kinds[:m], rows[:m], x1[:m], x2[:m])
        for env, _row, _seq, _emit in accepted:
            self._dirty_keys.setdefault(env.partition, set()).add(self._state_key(env.event))
        now = self.clock()
        names = self.names
        topic = self.output_topic
        for i, (env, _row, seq, emit) in enumerate(accepted):
            if not emit:
                continue
            ev = env.event
            vals = out[i].tolist()
            values = {nm: (v if v == v else None) for nm, v in zip(names, vals)}
            if isinstance(ev, Bar):
                fv = FeatureVector(symbol=ev.symbol, ts_event=ev.ts_event, ts_ingest=ev.ts_ingest,
                                   ts_proc=now, seq=seq, source="bar", price=ev.close, values=values)
            else:
                price = ev.price if ev.kind == "trade" else values["mid"]
                fv = FeatureVector(symbol=ev.symbol, ts_event=ev.ts_event, ts_ingest=ev.ts_recv,
                                   ts_proc=now, seq=seq, source="tick", price=price, values=values)
            result.outputs.append(Output(topic, fv, ev.symbol.encode()))
        return result

    # -- state -----------------------------------------------------------------
    @staticmethod
    def _state_key(ev) -> tuple[str, str, str]:
        return ("bar", ev.symbol, ev.interval) if isinstance(ev, Bar) else ("tick", ev.symbol, "")

    def item_key(self, envelope: Envelope) -> str | None:
        ev = envelope.event
        return item_name(self._state_key(ev)) if isinstance(ev, (Tick, Bar)) else None

    def dirty_items(self, partition: int) -> dict[str, bytes]:
        keys = self._dirty_keys.pop(partition, set())
        eng, fingerprint, width = self.engine, self.config.fingerprint(), self.engine.layout.width
        return {item_name(k): _encoder.encode(ItemState(SNAPSHOT_VERSION, fingerprint, width,
                                                        eng.state_of(eng.row_of(k))))
                for k in keys if eng.row_of(k) is not None}

    def restore_item(self, partition: int, key: str, data: bytes) -> None:
        item = _item_decoder.decode(data)
        _check_snapshot(item.version, item.config, item.width, self.config, self.engine.layout.width)
        source, symbol, interval = key.split("|", 2)
        state_key = (source, symbol, interval)
        row = self.engine.row_of(state_key)
        if row is None:
            row = self.engine.add_symbol(state_key)
        self.engine.load_state(row, item.state)
        self._keys_of.setdefault(partition, set()).add(state_key)

    def next_offsets(self, partition: int) -> dict[str, int]:
        """Per input topic, the next offset to read that the partition's state reflects."""
        return dict(self._next.get(partition, {}))

    def snapshot(self, partition: int) -> bytes | None:
        keys = self._keys_of.get(partition)
        if not keys and partition not in self._next:
            return None
        eng = self.engine
        symbols = [
            SymbolState(source=k[0], symbol=k[1], interval=k[2], state=eng.state_of(eng.row_of(k)))
            for k in sorted(keys or ())
        ]
        return _encoder.encode(PartitionState(
            version=SNAPSHOT_VERSION, config=self.config.fingerprint(), width=eng.layout.width,
            next_offsets=self.next_offsets(partition), symbols=symbols,
        ))

    def restore(self, partition: int, data: bytes) -> None:
        snap = _decoder.decode(data)
        _check_snapshot(snap.version, snap.config, snap.width, self.config, self.engine.layout.width)
        self.drop(partition)
        keys = self._keys_of.setdefault(partition, set())
        for s in snap.symbols:
            key = (s.source, s.symbol, s.interval)
            row = self.engine.add_symbol(key)
            self.engine.load_state(row, s.state)
            keys.add(key)
        self._next[partition] = dict(snap.next_offsets)

    def drop(self, partition: int) -> None:
        self._dirty_keys.pop(partition, None)
        for key in self._keys_of.pop(partition, set()):
            self.engine.remove_symbol(key)
        self._next.pop(partition, None)

    def state_bytes(self) -> int:
        return len(self.engine) * self.engine.state_bytes_per_symbol
