"""A consumer of your own: flag large trades on alerts.v1.

Run it like a built-in consumer (docs/extending.md)::

    ticktide consume --processor examples.processors.big_trades:BigTrades --bus kafka://localhost:9092
    ticktide consume --processor examples.processors.big_trades:BigTrades --config big_trades.toml

``big_trades.toml`` (optional)::

    min_notional = 250000.0   # price * size, in the quote currency

A Processor is pure: it turns a batch of decoded input events into output
events. The runner does the rest (polling, decoding, publishing, committing
offsets, dead letters, metrics, graceful shutdown).
"""

from __future__ import annotations

import time
import tomllib
from typing import Sequence

from schemas.events import Alert, Tick
from streaming.processor import Envelope, Output, ProcessResult, Processor


class BigTrades(Processor):
    name = "big-trades"  # the consumer group (and metrics label)
    inputs = ("ticks.v1",)
    outputs = ("alerts.v1",)

    def __init__(self, config_path: str | None = None, min_notional: float = 100_000.0) -> None:
        if config_path:
            with open(config_path, "rb") as fh:
                min_notional = float(tomllib.load(fh).get("min_notional", min_notional))
        if not min_notional > 0:
            raise ValueError(f"min_notional must be positive, got {min_notional!r}")
        self.min_notional = min_notional

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        now = time.time_ns()
        for env in batch:
            tick: Tick = env.event
            if tick.kind != "trade" or tick.price is None or tick.size is None:
                continue
            notional = tick.price * tick.size
            if notional < self.min_notional:
                continue
            result.outputs.append(Output("alerts.v1", Alert(
                # deterministic id: a replayed input gives the same alert, which consumers can drop
                alert_id=f"big_trade:{tick.venue}:{tick.symbol}:{tick.trade_id or env.offset}",
                source=self.name, type="big_trade", severity="info", symbol=tick.symbol,
                message=f"{tick.symbol} {tick.side or ''} trade of {notional:,.0f} on {tick.venue}".replace("  ", " "),
                ts_event=tick.ts_event, ts_proc=now,
                details={"price": tick.price, "size": tick.size, "notional": notional},
            )))
        return result
