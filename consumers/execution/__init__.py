"""Execution consumer: a paper broker, targets.v1 (+ prices) -> orders.v1, fills.v1.

- ``broker``: order planning, pre-trade checks, the cash floor, fills with slippage and fees (pure);
- ``processor``: the streaming adapter (``ticktide consume execution``).
"""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume execution`` runs (imported here: the CLI starts without the heavy deps)."""
    from consumers.execution.processor import ExecutionConfig, ExecutionProcessor

    return ExecutionProcessor(ExecutionConfig.load(config_path))
