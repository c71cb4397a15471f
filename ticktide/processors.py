"""The consumers ``ticktide consume NAME`` can run, by name."""

from __future__ import annotations

import importlib

# consumer name -> package exposing create_processor(config_path)
CONSUMERS = {
    "features": "consumers.features",
    "signals": "consumers.signals",
    "risk": "consumers.risk",
    "portfolio": "consumers.portfolio",
    "execution": "consumers.execution",
    "alerts": "consumers.alerts",
}


def create_processor(name: str, config_path: str | None = None):
    if name not in CONSUMERS:
        raise SystemExit(f"unknown consumer {name!r}; choose one of: {', '.join(CONSUMERS)}")
    module = importlib.import_module(CONSUMERS[name])
    return module.create_processor(config_path)
