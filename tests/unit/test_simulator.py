import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from producers.venues.binance import BinanceAdapter
from producers.simulator.server import MarketModel, SimConfig, SimulatorServer, frames


def test_same_seed_same_frames_other_seed_differs():
    cfg = dict(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"], rate=100.0, jump_prob=0.05, burst_prob=0.5)
    a = frames(SimConfig(seed=7, **cfg), 3000)
    b = frames(SimConfig(seed=7, **cfg), 3000)
    c = frames(SimConfig(seed=8, **cfg), 3000)
    assert a == b
    assert a != c


def test_binance_adapter_parses_every_frame():
    adapter = BinanceAdapter()
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT", "DOGEUSDT"], seed=3, rate=200.0,
                    prices={"DOGEUSDT": 0.12}, jump_prob=0.02)
    kinds = {"trade": 0, "quote": 0}
    last_trade: dict[str, int] = {}
    last_u: dict[str, int] = {}
    for i, frame in enumerate(frames(cfg, 5000)):
        res = adapter.parse(frame, 1_700_000_000_000_000_000 + i)
        assert res.error is None and res.skipped is None, (frame, res)
        (tick,) = res.ticks
        kinds[tick.kind] += 1
        if tick.kind == "trade":
            assert tick.price > 0 and tick.size > 0 and tick.side in ("buy", "sell")
            # trade ids are contiguous per symbol
            assert tick.seq == last_trade.get(tick.symbol, tick.seq - 1) + 1
            last_trade[tick.symbol] = tick.seq
        else:
            assert 0 < tick.bid < tick.ask
            assert tick.seq > last_u.get(tick.symbol, 0)
            last_u[tick.symbol] = tick.seq
    assert kinds["trade"] > 1000 and kinds["quote"] > 2000
    assert set(last_trade) == {"BTCUSDT", "ETHUSDT", "DOGEUSDT"}


def test_prices_random_walk_with_jumps():
    cfg = SimConfig(symbols=["BTCUSDT"], seed=1, rate=10.0, volatility=2.0, jump_prob=0.01, jump_scale=0.01)
    model = MarketModel(cfg)
    prices = []
    for _ in range(4000):
        ev = model.next_event()
        if "p" in ev.data:
            prices.append(float(ev.data["p"]))
    assert len(set(prices)) > 100
    assert 0.5 * 60000 < prices[-1] < 2 * 60000
    # simulated time advances at about rate events per second
    assert 300 < ev.offset < 500


def test_skip_trade_ids_makes_a_gap():
    model = MarketModel(SimConfig(symbols=["BTCUSDT"], seed=2, trade_ratio=1.0))
    ids = [model.next_event().data["t"] for _ in range(3)]
    model.skip_trade_ids("BTCUSDT", 5)
    ids += [model.next_event().data["t"] for _ in range(2)]
    assert ids[3] - ids[2] == 6 and ids[4] - ids[3] == 1


async def _recv(ws, n: int, timeout: float = 5.0) -> list[str]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await ws.recv())
    return out


async def test_server_combined_path_sim_clock_is_a_slice_of_the_model():
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], seed=11, rate=400.0)
    expected = frames(cfg, 4000)
    async with SimulatorServer(cfg, port=0, clock="sim") as sim:
        async with connect(sim.stream_url(["btcusdt@trade", "btcusdt@bookTicker"])) as ws:
            got = await _recv(ws, 50)
    want = [f for f in expected if json.loads(f)["stream"].startswith("btcusdt@")]
    start = want.index(got[0])
    assert got == want[start:start + 50]


async def test_server_subscribe_message_raw_path_and_hooks():
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], seed=5, rate=500.0)
    async with SimulatorServer(cfg, port=0) as sim:
        async with connect(f"{sim.url}/ws") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 9}))
            msgs = [json.loads(m) for m in await _recv(ws, 20)]
            assert msgs[0] == {"result": None, "id": 9}
            assert all(m["e"] == "trade" and m["s"] == "ETHUSDT" for m in msgs[1:])  # raw payloads
            sim.skip_trade_ids("ETHUSDT", 3)
            more = [json.loads(m) for m in await _recv(ws, 5)]
            ids = [m["t"] for m in msgs[1:] + more]
            steps = [b - a for a, b in zip(ids, ids[1:])]
            assert steps.count(4) == 1 and set(steps) <= {1, 4}
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}))
            async with asyncio.timeout(5):
                while True:
                    m = json.loads(await ws.recv())
                    if m.get("id") == 10:
                        assert m["result"] == ["ethusdt@trade"]
                        break
            assert await sim.drop_connections() == 1
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    async for _ in ws:
                        pass
            assert ws.close_code == 1012
