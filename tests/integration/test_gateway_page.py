"""The live page in headless Chromium (Debian's ``chromium``), driven over the DevTools protocol.

The gateway runs as its own process fed from Kafka; the test publishes ticks, a
signal and a risk update and waits until the page's DOM shows them, then keeps
a screenshot (``$TICKTIDE_TEST_ARTIFACTS``, default ``build/test-artifacts``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from schemas.events import RiskUpdate
from tests.integration.conftest import ROOT
from tests.integration.test_gateway import bus, publish, running_gateway, signal, tick  # noqa: F401 - fixture
from tests.unit.test_gateway_support import TOKEN

pytestmark = pytest.mark.kafka

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900", "--remote-debugging-port=0"]

DOM_STATE = """JSON.stringify({
  status: document.querySelector('#status').textContent,
  prices: Object.fromEntries([...document.querySelectorAll('#prices tbody tr')].map(
      r => [r.dataset.symbol, r.querySelector('.price').textContent])),
  signals: [...document.querySelectorAll('#signals li')].map(li => li.dataset.symbol + ' ' + li.dataset.action),
  risk: document.querySelector('#risk').textContent,
})"""


@pytest.fixture(scope="module")
def gateway(kafka_broker, tmp_path_factory):
    """A gateway with the default limits (the page subscribes to 5 topics x its symbols)."""
    yield from running_gateway(kafka_broker, tmp_path_factory.mktemp("gateway-page"))


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed: the live-page test needs it "
                "(apt-get install -y chromium; scripts/run-tests installs it)")


class DevTools:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids = ws, itertools.count(1)

    async def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json(timeout=20)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def start_chromium(tmp: Path, url: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = (await loop.run_in_executor(None, proc.stderr.readline)).decode(errors="replace")
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"DevTools listening on ws://([^/]+)/", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    pytest.fail("chromium did not start its DevTools endpoint:\n" + "".join(seen[-20:]))


async def test_live_page_renders_prices_and_a_signal(gateway, bus, tmp_path):  # noqa: F811 - fixture
    url = f"{gateway.http}/#token={TOKEN}&symbols=AAPL,MSFT"
    proc, devtools = await start_chromium(tmp_path, url)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{devtools}/json/list") as r:
                page = next(t for t in await r.json() if t["type"] == "page")
            ws = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            cdp = DevTools(ws)
            state: dict = {}
            deadline = time.monotonic() + 30
            for i in itertools.count():
                state = json.loads(await cdp.evaluate(DOM_STATE) or "{}")
                if (state.get("prices", {}).get("AAPL") == "187.25" and "MSFT" in state.get("prices", {})
                        and "AAPL buy" in state.get("signals", []) and "1,050,000.00" in state.get("risk", "")):
                    break
                assert time.monotonic() < deadline, f"page did not render live data: {state}"
                if state.get("status", "").startswith("subscribed"):
                    now = time.time_ns()
                    await publish(bus, "ticks.v1", [tick("AAPL", 187.25, i), tick("MSFT", 411.5, i),
                                                    tick("NVDA", 900.0, i)])
                    await publish(bus, "signals.v1", [signal("AAPL", "buy")])
                    await publish(bus, "risk.v1", [RiskUpdate(
                        portfolio_id="main", ts_event=now, ts_proc=now, value=1_050_000.0, cash=50_000.0,
                        exposures={"AAPL": 0.4, "MSFT": 0.55, "NVDA": 0.05}, var_95_historical=-0.021,
                        max_drawdown=-0.08, risk_level="medium")])
                await asyncio.sleep(0.3)
            assert "NVDA" not in state["prices"]  # only the subscribed symbols
            assert "40.00%" in state["risk"] and "medium" in state["risk"]
            shot = await cdp.call("Page.captureScreenshot", format="png")
            artifacts = Path(os.environ.get("TICKTIDE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
            artifacts.mkdir(parents=True, exist_ok=True)
            (artifacts / "gateway-live-page.png").write_bytes(base64.b64decode(shot["data"]))
            await ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
