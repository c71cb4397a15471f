"""SignalEngine: built-in rules + plug-ins + cooldowns for a set of symbols. Pure, no I/O.

Determinism (offline CLI == live consumer):

- ``signal_id = f"{symbol}:{type}:{seq}"`` where ``seq`` is the triggering
  FeatureVector's ``seq``: a replay produces the same ids, so downstream can
  dedupe. A rule/strategy emits at most one signal of a type per vector.
- Cooldowns are measured in **event time** (``ts_event``), per symbol and per
  rule (or plug-in): after a signal of a rule for a symbol, that rule stays
  quiet for the symbol until ``ts_event >= last + cooldown``. Crossing rules
  still track their previous values while cooling down.
- The wall-clock fields of a Signal are ``ts_proc`` (passed in as
  ``now_ns``) and ``ts_ingest`` (copied from the vector: when the market
  data entered the system; 0 offline when the input file has none);
  compare runs on everything else (see ``comparable``).
- The price a rule sees is ``fv.price``, falling back to ``values["mid"]``.

State is a dict per symbol, JSON-able (``snapshot``/``restore``)::

    {symbol: {"last": {rule: ts_event of the last signal},
              "rules": {rule: rule state}, "plugins": {name: plug-in state}}}
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterable

import msgspec

from consumers.signals.config import SignalsConfig
from consumers.signals.plugins import Plugin, SignalHit, load_plugins
from consumers.signals.rules import Rule, build_rules
from schemas.events import FeatureVector, Signal

log = logging.getLogger(__name__)


def comparable(signal: Signal) -> dict[str, Any]:
    """A Signal without its wall-clock stamps (ts_proc, ts_ingest), for comparing two runs."""
    d = msgspec.to_builtins(signal)
    d.pop("ts_proc", None)
    d.pop("ts_ingest", None)
    return d


REWIND_NS = 1_000_000_000  # event time more than this before the last signal: a rewind, not jitter


class SuppressionLog:
    """INFO lines about signals held back by their cooldown, at most one per ``every_s`` (wall clock:
    only the log is rate-limited, never the signals), so a quiet stream explains itself."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.count = 0
        self._next = 0.0

    def note(self, symbol: str, kind: str, left_s: float) -> None:
        self.count += 1
        now = time.monotonic()
        if now < self._next or not log.isEnabledFor(logging.INFO):
            return
        self._next = now + self.every_s
        log.info("signals: %s %s suppressed by its cooldown, %.0f s (event time) left; %d suppressed so far",
                 symbol, kind, left_s, self.count)

    def rewound(self, symbol: str, back_s: float) -> None:
        log.info("signals: %s event time went back %.0f s (a replay?): its cooldowns restart", symbol, back_s)


class SignalEngine:
    def __init__(self, config: SignalsConfig | None = None, plugins: list[Plugin] | None = None,
                 on_plugin_error=None) -> None:
        self.config = config or SignalsConfig()
        self.rules: list[Rule] = build_rules(self.config.rules)
        self.plugins: list[Plugin] = load_plugins(self.config.plugins) if plugins is None else plugins
        self.state: dict[str, dict] = {}
        self.on_plugin_error = on_plugin_error
        self._suppressed = SuppressionLog()

    def cooldown_ns(self, override: float | None) -> int:
        seconds = self.config.cooldown_s if override is None else override
        return int(round(seconds * 1e9))

    def emit(self, fv: FeatureVector, kind: str, hit: SignalHit, cooldown_ns: int, last: dict,
             now_ns: int, out: list[Signal]) -> None:
        """Append the Signal of ``hit`` to ``out`` unless ``kind`` is cooling down for the symbol."""
        if not self.cooling(fv, kind, hit.type or kind, cooldown_ns, last):
            self.record(fv, kind, hit, last, now_ns, out)

    def cooling(self, fv: FeatureVector, kind: str, signal_type: str, cooldown_ns: int, last: dict) -> bool:
        """Whether ``kind`` is still cooling down for the symbol (the suppression is logged)."""
        prev = last.get(kind)
        if prev is not None and fv.ts_event - prev < cooldown_ns:
            self._suppressed.note(fv.symbol, signal_type, (prev + cooldown_ns - fv.ts_event) / 1e9)
            return True
        return False

    def record(self, fv: FeatureVector, kind: str, hit: SignalHit, last: dict, now_ns: int,
               out: list[Signal]) -> None:
        """Append the Signal of ``hit`` (past its cooldown) and start the cooldown."""
        signal_type = hit.type or kind
        last[kind] = fv.ts_event
        out.append(Signal(
            signal_id=f"{fv.symbol}:{signal_type}:{fv.seq}", symbol=fv.symbol, type=signal_type,
            action=hit.action, urgency=hit.urgency, strength=hit.strength, reason=hit.reason,
            ts_event=fv.ts_event, ts_ingest=fv.ts_ingest, ts_proc=now_ns, seq=fv.seq,
            features={k: (None if v is None else float(v)) for k, v in hit.features.items()},
        ))

    def symbol_state(self, symbol: str) -> dict:
        return self.state.setdefault(symbol, {"last": {}, "rules": {}, "plugins": {}})

    def rewind(self, symbol: str, st: dict, back_ns: int) -> None:
        """Event time went back more than REWIND_NS (the same recording replayed again, an older
        file): the old cooldowns would silence this symbol until the new stream caught up, so they
        restart."""
        self._suppressed.rewound(symbol, back_ns / 1e9)
        st["last"].clear()

    def on_features(self, fv: FeatureVector, now_ns: int) -> list[Signal]:
        """Signals for one FeatureVector, in rule order then plug-in order."""
        st = self.symbol_state(fv.symbol)
        seen = st.get("seen")
        if seen is not None and fv.ts_event < seen - REWIND_NS:
            self.rewind(fv.symbol, st, seen - fv.ts_event)
        st["seen"] = fv.ts_event
        values = fv.values
        price = fv.price if fv.price is not None else values.get("mid")
        out: list[Signal] = []
        for rule in self.rules:
            hit = rule.evaluate(values, price, st["rules"].setdefault(rule.name, {}))
            if hit is not None:
                self.emit(fv, rule.name, hit, self.cooldown_ns(rule.cooldown_s), st["last"], now_ns, out)
        self.run_plugins(fv, st, now_ns, out)
        return out

    def run_plugins(self, fv: FeatureVector, st: dict, now_ns: int, out: list[Signal]) -> None:
        """The plug-ins' signals for one vector (after the rules', which share ``st["last"]``)."""
        for plugin in self.plugins:
            pstate = st["plugins"].setdefault(plugin.name, {})
            try:
                hits = plugin.evaluate(fv, pstate)
            except Exception as exc:  # noqa: BLE001 - a user strategy must not stop the stream
                log.exception("signals: plug-in %s failed on %s seq %s", plugin.name, fv.symbol, fv.seq)
                if self.on_plugin_error:
                    self.on_plugin_error(plugin.name, exc)
                continue
            seen: set[str] = set()
            for hit in hits:
                kind = hit.type or plugin.name
                if kind in seen:  # one signal per type per vector keeps signal_id unique
                    continue
                seen.add(kind)
                self.emit(fv, kind, hit, self.cooldown_ns(plugin.cooldown_s), st["last"], now_ns, out)

    def run(self, vectors: Iterable[FeatureVector], now_ns: int = 0) -> list[Signal]:
        """Every signal for a sequence of vectors (research, tests)."""
        out: list[Signal] = []
        for fv in vectors:
            out.extend(self.on_features(fv, now_ns))
        return out

    # -- state -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return msgspec.json.encode(self.state)

    def restore(self, data: bytes) -> None:
        self.state = msgspec.json.decode(data, type=dict[str, dict])
