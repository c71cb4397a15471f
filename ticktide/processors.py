"""The consumers ``ticktide consume NAME`` can run, by name, or your own by import path."""

from __future__ import annotations

import importlib
import inspect

from streaming.loader import import_object
from streaming.processor import Processor

# consumer name -> package exposing create_processor(config_path)
CONSUMERS = {
    "features": "consumers.features",
    "signals": "consumers.signals",
    "risk": "consumers.risk",
    "portfolio": "consumers.portfolio",
    "execution": "consumers.execution",
    "alerts": "consumers.alerts",
}


def create_processor(name: str, config_path: str | None = None) -> Processor:
    """A built-in consumer by name, or ``module:Class`` (a Processor subclass, or a function returning one;
    called with ``config_path`` when one is given)."""
    if ":" in name:
        return _custom(name, config_path)
    if name not in CONSUMERS:
        raise ValueError(f"unknown consumer {name!r}; choose one of: {', '.join(CONSUMERS)}")
    module = importlib.import_module(CONSUMERS[name])
    return module.create_processor(config_path)


def _custom(path: str, config_path: str | None) -> Processor:
    factory = import_object(path)
    if inspect.isclass(factory) and not issubclass(factory, Processor):
        raise ValueError(f"{path} is not a streaming.processor.Processor subclass")
    if not callable(factory):
        raise ValueError(f"{path} is neither a Processor class nor a function returning one")
    processor = factory(config_path) if config_path else factory()
    if not isinstance(processor, Processor):
        raise ValueError(f"{path} returned {type(processor).__name__}, not a streaming.processor.Processor")
    return processor
