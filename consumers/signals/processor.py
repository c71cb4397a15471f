"""SignalsProcessor: features.v1 -> signals.v1, one SignalEngine per input partition.

Columnar: the runner hands whole decoded batches to ``process_columns``
(``consumers.signals.batch``: the rules over all rows in one numpy pass);
``process`` (one ``SignalEngine.on_features`` per vector) is the reference
it equals, and what the runner uses for batches that need per-input
decisions.

Stateful: each partition's engine state (cooldowns, previous RSI/MACD/levels,
plug-in state) is snapshotted to ``changelog.signals.v1`` and restored when
the partition is assigned. Symbols are the key of features.v1, so a symbol's
state lives in exactly one partition. The offline CLI (``ticktide signals``)
drives this same class, so both produce the same signals.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterable, Sequence

from streaming.metrics import counter

from consumers.signals.batch import process_columns
from consumers.signals.batch_rules import array_rules
from consumers.signals.config import SignalsConfig
from consumers.signals.engine import SignalEngine
from consumers.signals.plugins import Plugin, load_plugins
from consumers.signals.rules import build_rules
from schemas.events import FeatureVector, Signal
from schemas.topics import FEATURES, SIGNALS
from streaming.batch import Columns
from streaming.processor import ColumnResult, Envelope, Output, Processor, ProcessResult

SIGNALS_TOTAL = counter("ticktide_signals_total", "Signals emitted, per type and action", ["type", "action"])
PLUGIN_ERRORS = counter("ticktide_signal_plugin_errors_total", "Strategy plug-in exceptions", ["plugin"])


def _count_plugin_error(name: str, exc: BaseException) -> None:
    PLUGIN_ERRORS.labels(name).inc()


def _count(signals: Iterable[Signal]) -> None:
    """SIGNALS_TOTAL once per (type, action) of a batch, not once per signal."""
    for (kind, action), n in Counter((s.type, s.action) for s in signals).items():
        SIGNALS_TOTAL.labels(kind, action).inc(n)


class SignalsProcessor(Processor):
    name = "signals"
    inputs = (FEATURES.name,)
    outputs = (SIGNALS.name,)
    stateful = True
    columnar = True

    def __init__(self, config: SignalsConfig | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config or SignalsConfig()
        self.plugins: list[Plugin] = load_plugins(self.config.plugins)  # loaded once, shared
        self.engines: dict[int, SignalEngine] = {}
        self.clock = clock
        self.array_rules = array_rules(build_rules(self.config.rules))  # the batch form, same order
        self._symbol_keys: dict[str, bytes] = {}

    def engine(self, partition: int) -> SignalEngine:
        eng = self.engines.get(partition)
        if eng is None:
            eng = SignalEngine(self.config, self.plugins, on_plugin_error=_count_plugin_error)
            self.engines[partition] = eng
        return eng

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        now = self.clock()
        for env in batch:
            fv = env.event
            if not isinstance(fv, FeatureVector):
                result.rejected.append((env, f"expected FeatureVector, got {type(fv).__name__}"))
                continue
            for sig in self.engine(env.partition).on_features(fv, now):
                result.outputs.append(Output(SIGNALS.name, sig))
        _count(o.event for o in result.outputs)
        return result

    def process_columns(self, batch: Columns) -> ColumnResult:
        result, signals = process_columns(self, batch)
        _count(signals)
        return result

    def symbol_keys(self, symbols: list[str]) -> list[bytes]:
        """The record keys of signals.v1 (the symbol's UTF-8, as streaming.codec.key_for), each
        symbol encoded once."""
        cache = self._symbol_keys
        for sym in set(symbols) - cache.keys():
            cache[sym] = sym.encode()
        return [cache[s] for s in symbols]

    def snapshot(self, partition: int) -> bytes | None:
        eng = self.engines.get(partition)
        return None if eng is None else eng.snapshot()

    def restore(self, partition: int, data: bytes) -> None:
        self.engine(partition).restore(data)

    def drop(self, partition: int) -> None:
        self.engines.pop(partition, None)
