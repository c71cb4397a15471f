"""Small shared test helpers (no mocks of the bus: tests use MemoryBus or real Kafka)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import msgspec
import pytest

from schemas.events import FeatureVector, Tick
from streaming.bus import open_bus, reset_memory_buses
from streaming.processor import Envelope, Output, Processor, ProcessResult


def trade(symbol: str, price: float, seq: int, size: float = 1.0, venue: str = "test") -> Tick:
    now = time.time_ns()
    return Tick(symbol=symbol, venue=venue, kind="trade", ts_event=1_700_000_000_000_000_000 + seq,
                ts_recv=now, price=price, size=size, side="buy", trade_id=str(seq), seq=seq)


class CountingProcessor(Processor):
    """Counts trades per symbol (stateful) and raises on the symbol POISON."""

    name = "counting"
    inputs = ("ticks.v1",)
    stateful = True

    def __init__(self) -> None:
        self.counts: dict[int, dict[str, int]] = {}

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        out = ProcessResult()
        for env in batch:
            tick = env.event
            if tick.symbol == "POISON":
                raise ValueError("poison tick")
            part = self.counts.setdefault(env.partition, {})
            part[tick.symbol] = part.get(tick.symbol, 0) + 1
            n = part[tick.symbol]
            out.outputs.append(Output("features.v1", FeatureVector(
                symbol=tick.symbol, ts_event=tick.ts_event, ts_ingest=tick.ts_recv, ts_proc=time.time_ns(),
                seq=n, source="tick", price=tick.price, values={"count": float(n)})))
        return out

    def snapshot(self, partition: int) -> bytes | None:
        return msgspec.json.encode(self.counts.get(partition, {}))

    def restore(self, partition: int, data: bytes) -> None:
        self.counts[partition] = msgspec.json.decode(data, type=dict[str, int])

    def drop(self, partition: int) -> None:
        self.counts.pop(partition, None)


async def drain(runner, max_records: int = 1000) -> None:
    """Open ``runner`` on a memory bus, hand it every batch there is (``handle``), close it."""
    await runner.open()
    async for records in runner.subscription.batches(max_records, 10):  # the memory bus: lists, made columns
        if not records:
            break
        await runner.handle(records)
    await runner.close()


async def wait_for(cond, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``cond()`` every 10 ms until it is true; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@pytest.fixture(name="bus")
def memory_bus():
    """A fresh in-process bus (``memory://``); import ``memory_bus`` to get the ``bus`` fixture."""
    reset_memory_buses()
    yield open_bus("memory://")
    reset_memory_buses()


# -- the small historical workflow both live/replay parity tests run ---------------
PRICES_CSV = Path(__file__).resolve().parent / "data" / "stock_prices_20.csv"
WORKFLOW_SYMBOLS = ["AAPL", "MA", "JPM", "XOM", "WMT", "PFE"]
SMALL_WORKFLOW_CONFIG = """
[workflow]
warmup = 60
[portfolio]
lookback = 60
min_history = 40
objective = "min_variance"
risk_model = "ledoit_wolf"
[portfolio.schedule]
frequency = "weekly"
[portfolio.constraints]
max_weight = 0.4
[execution]
max_position_weight = 0.5
"""


def write_small_workflow_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "wf.toml"
    cfg.write_text(SMALL_WORKFLOW_CONFIG)
    return cfg


@dataclass
class SmallWorkflow:
    cfg: Any  # WorkflowConfig
    symbols: list[str]
    data: Any  # the loaded prices
    close: Any  # the selected closes, one row per trading day
    first: Any  # the first trading day
    replayed: Any  # the workflow's stage-by-stage replay (Collected)

    def processors(self) -> list:
        from ticktide.workflow.run import build_processors

        return build_processors(self.cfg, self.symbols, self.first)

    def bars(self):
        from ticktide.workflow.data import bars_for_day

        for day, row in self.close.iterrows():
            yield from bars_for_day(self.data, row, day)


async def replay_small_workflow(tmp_path: Path) -> SmallWorkflow:
    """The small config over 2016-06..12 of the test prices, replayed stage by stage."""
    from ticktide.workflow.data import load_prices, select
    from ticktide.workflow.pipeline import replay
    from ticktide.workflow.run import WorkflowConfig, build_processors

    cfg = WorkflowConfig.load(str(write_small_workflow_config(tmp_path)))
    symbols = list(WORKFLOW_SYMBOLS)
    data = load_prices(str(PRICES_CSV))
    close, first = select(data, symbols, "2016-06-01", "2016-12-31", 60)
    replayed = await replay(data, close, build_processors(cfg, symbols, first))
    return SmallWorkflow(cfg, symbols, data, close, first, replayed)


class ItemCountingProcessor(CountingProcessor):
    """CountingProcessor whose state goes to the changelog one item (symbol) at a time."""

    name = "item-counting"

    def __init__(self) -> None:
        super().__init__()
        self.dirty: dict[int, set[str]] = {}

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        for env in batch:
            self.dirty.setdefault(env.partition, set()).add(env.event.symbol)
        return super().process(batch)

    def dirty_items(self, partition: int) -> dict[str, bytes]:
        counts = self.counts.get(partition, {})
        return {s: str(counts[s]).encode() for s in self.dirty.pop(partition, set())}

    def restore_item(self, partition: int, key: str, data: bytes) -> None:
        self.counts.setdefault(partition, {})[key] = int(data)

    def item_key(self, envelope: Envelope) -> str | None:
        return envelope.event.symbol


class FlakyWebhook:
    """A real local HTTP server (aiohttp, 127.0.0.1, ephemeral port): 500 for the first
    ``fail`` POSTs, 200 afterwards; records every call."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls: list[tuple[int, dict]] = []  # (status answered, JSON body)
        self.url = ""

    @property
    def requests(self) -> list[dict]:
        return [body for _, body in self.calls]

    @property
    def statuses(self) -> list[int]:
        return [status for status, _ in self.calls]

    @property
    def delivered(self) -> list[dict]:
        return [body for status, body in self.calls if status == 200]

    async def _handle(self, request):
        from aiohttp import web

        body = await request.json()
        status = 500 if len(self.calls) < self.fail else 200
        self.calls.append((status, body))
        return web.Response(status=status, text="down" if status == 500 else "ok")

    async def __aenter__(self) -> "FlakyWebhook":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()
