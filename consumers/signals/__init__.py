"""Signals consumer: features.v1 -> signals.v1.

- ``rules``: the built-in rules (price movement, volume spike, RSI/MACD
  crossings, breakouts), pure;
- ``plugins``: the strategy plug-in interface (see its docstring);
- ``engine``: rules + plug-ins + event-time cooldowns + deterministic ids;
- ``processor``: the streaming adapter (``ticktide consume signals``);
- ``commands``: ``ticktide signals --input FEATURES.jsonl`` (same code, no bus).
"""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume signals`` runs (imported here: the CLI starts without the heavy deps)."""
    from consumers.signals.config import SignalsConfig
    from consumers.signals.processor import SignalsProcessor

    return SignalsProcessor(SignalsConfig.load(config_path))


_LAZY = {
    "SignalEngine": "consumers.signals.engine",
    "comparable": "consumers.signals.engine",
    "SignalHit": "consumers.signals.plugins",
    "SignalsConfig": "consumers.signals.config",
    "SignalsProcessor": "consumers.signals.processor",
}


def __getattr__(attr: str):
    if attr in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[attr]), attr)
    raise AttributeError(attr)
