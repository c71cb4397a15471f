"""SignalsProcessor: features.v1 -> signals.v1, one SignalEngine per input partition.

Stateful: each partition's engine state (cooldowns, previous RSI/MACD/levels,
plug-in state) is snapshotted to ``changelog.signals.v1`` and restored when
the partition is assigned. Symbols are the key of features.v1, so a symbol's
state lives in exactly one partition. The offline CLI (``ticktide signals``)
drives this same class, so both produce the same signals.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

from streaming.metrics import counter

from consumers.signals.config import SignalsConfig
from consumers.signals.engine import SignalEngine
from consumers.signals.plugins import Plugin, load_plugins
from schemas.events import FeatureVector
from schemas.topics import FEATURES, SIGNALS
from streaming.processor import Envelope, Output, Processor, ProcessResult

SIGNALS_TOTAL = counter("ticktide_signals_total", "Signals emitted, per type and action", ["type", "action"])
PLUGIN_ERRORS = counter("ticktide_signal_plugin_errors_total", "Strategy plug-in exceptions", ["plugin"])


def _count_plugin_error(name: str, exc: BaseException) -> None:
    PLUGIN_ERRORS.labels(name).inc()


class SignalsProcessor(Processor):
    name = "signals"
    inputs = (FEATURES.name,)
    stateful = True

    def __init__(self, config: SignalsConfig | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config or SignalsConfig()
        self.plugins: list[Plugin] = load_plugins(self.config.plugins)  # loaded once, shared
        self.engines: dict[int, SignalEngine] = {}
        self.clock = clock

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
                SIGNALS_TOTAL.labels(sig.type, sig.action).inc()
                result.outputs.append(Output(SIGNALS.name, sig))
        return result

    def snapshot(self, partition: int) -> bytes | None:
        eng = self.engines.get(partition)
        return None if eng is None else eng.snapshot()

    def restore(self, partition: int, data: bytes) -> None:
        self.engine(partition).restore(data)

    def drop(self, partition: int) -> None:
        self.engines.pop(partition, None)
