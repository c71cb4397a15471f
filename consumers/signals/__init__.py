"""Signals consumer: features.v1 -> signals.v1.

- ``rules``: the built-in rules (price movement, volume spike, RSI/MACD
  crossings, breakouts), pure;
- ``plugins``: the strategy plug-in interface (see its docstring);
- ``engine``: rules + plug-ins + event-time cooldowns + deterministic ids;
- ``processor``: the streaming adapter (``ticktide consume signals``);
- ``commands``: ``ticktide signals --input FEATURES.jsonl`` (same code, no bus).
"""

from __future__ import annotations

from consumers.signals.config import SignalsConfig
from consumers.signals.engine import SignalEngine, comparable  # noqa: F401
from consumers.signals.plugins import SignalHit  # noqa: F401
from consumers.signals.processor import SignalsProcessor


def create_processor(config_path: str | None = None) -> SignalsProcessor:
    return SignalsProcessor(SignalsConfig.load(config_path))
