"""Follow signals through the gateway's WebSocket (docs/gateway.md).

    TICKTIDE_GATEWAY_TOKEN=... python examples/clients/gateway_client.py ws://localhost:8080/ws BTCUSDT ETHUSDT

Prints one line per signal; Ctrl-C stops. Uses aiohttp (a ticktide dependency);
any WebSocket client speaks the same JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp


async def follow(url: str, token: str, symbols: list[str], limit: int = 0) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, heartbeat=30) as ws:
            await ws.send_json({"action": "auth", "token": token})
            welcome = await ws.receive_json(timeout=10)
            if welcome.get("type") != "welcome":
                raise SystemExit(f"gateway refused: {welcome}")
            await ws.send_json({"action": "subscribe", "topics": ["signals"], "symbols": symbols})
            seen = 0
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                if frame["type"] == "event":
                    s = frame["event"]
                    print(f"{s['symbol']:<8} {s['type']:<16} {s['action']:<14} {s['reason']}", flush=True)
                    seen += 1
                    if limit and seen >= limit:
                        return
                elif frame["type"] == "error":
                    print(f"gateway: {frame['error']}", file=sys.stderr)
        if ws.close_code not in (None, 1000):
            raise SystemExit(f"closed by the gateway with code {ws.close_code}")


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:8080/ws"
    token = os.environ.get("TICKTIDE_GATEWAY_TOKEN") or sys.exit("set TICKTIDE_GATEWAY_TOKEN to a gateway token")
    try:
        asyncio.run(follow(url, token, [s.upper() for s in sys.argv[2:]]))
    except KeyboardInterrupt:
        pass
