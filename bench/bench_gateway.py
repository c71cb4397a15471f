"""Gateway fan-out benchmark: N WebSocket subscribers on loopback, a steady event rate from Kafka.

- the gateway: ``ticktide gateway`` as its own process on the local broker (a fresh topic prefix);
- subscribers: ``--clients`` aiohttp WebSocket connections spread over ``--client-procs``
  processes, each subscribed to ``ticks`` (every symbol);
- publisher: ``--rate`` ticks per second for ``--duration`` seconds to ticks.v1, each stamped
  ``ts_recv`` = publish time.

Reported per delivered frame: end-to-end latency (publish -> Kafka -> gateway -> client, from
``ts_recv``) and gateway delivery latency (the gateway's fan-out stamp ``ts_gateway`` -> client);
p50/p99/max; delivered/expected frames; slow-client disconnects; gateway RSS before clients,
with clients connected, and its peak (VmHWM).

    scripts/kafka-local start
    PYTHONPATH=. .venv/bin/python bench/bench_gateway.py --clients 1000 --rate 20 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token-0123456789abcdef"


def rss_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def client_proc(url: str, n: int, duration: float) -> None:
    """One subscriber process: n connections; prints JSON latencies (ms) when the run ends."""
    import aiohttp

    e2e: list[float] = []
    gw: list[float] = []
    closed: list[int] = []
    ready = 0

    async def one(session):
        nonlocal ready
        ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {TOKEN}"}, max_msg_size=0)
        await ws.receive()
        await ws.send_str('{"action": "subscribe", "topics": ["ticks"]}')
        await ws.receive()
        ready += 1
        async for msg in ws:
            now = time.time_ns()
            d = json.loads(msg.data)
            if d.get("type") == "event":
                e2e.append((now - d["event"]["ts_recv"]) / 1e6)
                gw.append((now - d["ts_gateway"]) / 1e6)
        closed.append(ws.close_code or 0)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        for _ in range(n):
            tasks.append(asyncio.create_task(one(session)))
            await asyncio.sleep(0.002)
        while ready < n:
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "STOP"
        for t in tasks:
            t.cancel()
    print(json.dumps({"e2e": e2e, "gw": gw, "closed": [c for c in closed if c]}), flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(args: argparse.Namespace) -> None:
    from aiohttp import ClientSession

    from schemas.events import Tick
    from streaming.bus.kafka import KafkaBus
    from streaming.codec import encode, key_for

    bus_url = f"{args.bus}?prefix=bench{uuid.uuid4().hex[:6]}."
    port = args.port
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TICKTIDE_GATEWAY_TOKENS": TOKEN}
    gw = subprocess.Popen([sys.executable, "-m", "ticktide.gateway.commands", "--bus", bus_url, "--port", str(port),
                           "--max-connections-per-token", str(args.clients + 10)], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bus = KafkaBus(bus_url)
    await bus.start()
    clients: list[subprocess.Popen] = []
    try:
        async with ClientSession() as session:
            for _ in range(150):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as r:
                        if (await r.json())["bus_ready"]:
                            break
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        mem_idle = rss_kb(gw.pid)
        per = [args.clients // args.client_procs + (1 if i < args.clients % args.client_procs else 0)
               for i in range(args.client_procs)]
        for n in per:
            clients.append(subprocess.Popen(
                [sys.executable, __file__, "--client", str(n), "--url", f"ws://127.0.0.1:{port}/ws"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env, text=True))
        for c in clients:
            assert c.stdout.readline().strip() == "READY"
        mem_connected = rss_kb(gw.pid)
        # steady rate; 5 symbols round robin
        symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG"]
        total = int(args.rate * args.duration)
        t0 = time.perf_counter()
        for i in range(total):
            target = t0 + i / args.rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time_ns()
            t = Tick(symbol=symbols[i % 5], venue="bench", kind="trade", ts_event=now, ts_recv=now, price=100.0,
                     size=1.0, seq=i)
            await bus.publish("ticks.v1", key_for("ticks.v1", t), encode(t))
            await bus.flush()
        await asyncio.sleep(2.0)
        mem_end = rss_kb(gw.pid)
        e2e: list[float] = []
        gwl: list[float] = []
        closed: list[int] = []
        for c in clients:
            out, _ = c.communicate("STOP\n", timeout=120)
            data = json.loads(out.strip().splitlines()[-1])
            e2e += data["e2e"]
            gwl += data["gw"]
            closed += data["closed"]
        async with ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                slow = next((line.split()[-1] for line in (await r.text()).splitlines()
                             if line.startswith("ticktide_gateway_slow_disconnects_total")), "?")
    finally:
        await bus.close()
        gw.terminate()
        gw.wait(15)
        for c in clients:
            if c.poll() is None:
                c.kill()
    expected = total * args.clients
    lines = [
        f"clients={args.clients} (in {args.client_procs} processes) rate={args.rate}/s duration={args.duration}s "
        f"-> {args.rate * args.clients:,.0f} frames/s",
        f"delivered {len(e2e):,} / {expected:,} frames; slow disconnects {slow}; other closes {len(closed)}",
        f"end-to-end (publish->Kafka->gateway->client) ms: p50 {pct(e2e, .5):.2f}  p99 {pct(e2e, .99):.2f}  "
        f"max {max(e2e, default=float('nan')):.2f}",
        f"gateway fan-out->client ms:                     p50 {pct(gwl, .5):.2f}  p99 {pct(gwl, .99):.2f}  "
        f"max {max(gwl, default=float('nan')):.2f}",
        f"gateway RSS MB: idle {mem_idle['VmRSS'] / 1024:.1f}, {args.clients} clients connected "
        f"{mem_connected['VmRSS'] / 1024:.1f}, after run {mem_end['VmRSS'] / 1024:.1f}, peak {mem_end['VmHWM'] / 1024:.1f}",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0, help="events per second published")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--bus", default="kafka://127.0.0.1:9092")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--client", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--url", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.client:
        asyncio.run(client_proc(a.url, a.client, a.duration))
    else:
        asyncio.run(main(a))
