"""Stress tests on demand (issue 5) on the real broker: `ticktide stress` publishes a
StressRequest to risk-requests.v1, the `ticktide consume risk` process answers on
risk.v1 with the request's id, and the CLI prints that answer.

The answer must equal what the same consumer code computes offline from the same
fills and ticks; a request the consumer cannot answer (an unknown portfolio and no
weights) is dead-lettered with a reason that names it, and the CLI gives up with
exit status 1 and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from consumers.risk.config import RiskConfig
from consumers.risk.processor import RiskProcessor
from schemas.events import DeadLetter, Fill, RiskUpdate, Tick
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode, key_for
from streaming.processor import Envelope
from tests.integration.conftest import wait_until
from tests.integration.test_alerting import _caught_up

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
T0 = 1_700_006_400 * S
SCENARIOS = ["market_crash", "volatility_spike_var95", "liquidity_crisis", "historical_worst_window"]


def _events():
    fill = Fill(fill_id="f1", order_id="o1", portfolio_id="p1", symbol="AAA", side="buy", quantity=400,
                price=100.0, ts_event=T0, ts_proc=0)
    ticks = [Tick(symbol=s, venue="test", kind="trade", ts_event=T0 + m * 60 * S, ts_recv=T0 + m * 60 * S,
                  price=p, size=1.0)
             for m, (s, p) in enumerate([("AAA", 101.0), ("BBB", 50.0), ("AAA", 99.5), ("BBB", 51.0)], 1)]
    return fill, ticks


async def _publish(bus: KafkaBus, topic: str, events) -> None:
    for ev in events:
        await bus.publish(topic, key_for(topic, ev), encode(ev))
    await bus.flush()


async def _stress_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ticktide.cli", "stress", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120)


async def test_stress_on_demand_over_kafka(kafka_url, processes, tmp_path):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["fills.v1", "ticks.v1", "features.v1", "targets.v1", "risk.v1",
                             "risk-requests.v1", "alerts.v1", "health.v1", "dlq.v1"])
    risk = processes.start("consume", "risk", "--bus", kafka_url, name="risk")

    async def updates() -> list[RiskUpdate]:
        assert risk.poll() is None, processes.log(risk)[-3000:]
        return [msgspec.json.decode(r.value, type=RiskUpdate) for r in await bus.read_all("risk.v1", timeout_s=5)]

    fill, ticks = _events()
    await _publish(bus, "fills.v1", [fill])
    await wait_until(lambda: _at_least(updates, 1), 60, interval=0.5, what="risk to apply the fill")
    await _publish(bus, "ticks.v1", ticks)
    # the ticks of two symbols sit on two partitions, so how many updates they give depends
    # on the interleaving: wait until the group has committed every input instead
    await wait_until(lambda: _caught_up(bus, "risk", ["fills.v1", "ticks.v1"]), 60, interval=0.5,
                     what="risk to mark the ticks")

    # the current book
    out = await _stress_cli("--bus", kafka_url, "--portfolio", "p1", "--timeout", "60")
    assert out.returncode == 0, out.stderr + processes.log(risk)[-3000:]
    answer = json.loads(out.stdout)
    assert answer["portfolio_id"] == "p1" and len(answer["request_id"]) == 32
    assert [s["scenario"] for s in answer["stress"]] == SCENARIOS
    offline = RiskProcessor(RiskConfig())
    offline.process([Envelope("fills.v1", 0, 0, None, fill)])
    offline.process([Envelope("ticks.v1", 0, i, None, t) for i, t in enumerate(ticks)])
    assert answer["stress"] == msgspec.to_builtins(offline.stress_now("p1"))
    assert answer["positions"] == {"AAA": 400.0}
    assert answer["stress"][0]["portfolio_loss"] < 0 and answer["stress"][0]["worst_position"] == "AAA"

    # given weights, for a portfolio the consumer has never seen
    weights = tmp_path / "w.json"
    weights.write_text(json.dumps({"AAA": 0.25, "BBB": 0.75}))
    out = await _stress_cli("--bus", kafka_url, "--portfolio", "p2", "--weights", str(weights), "--pretty")
    assert out.returncode == 0, out.stderr
    answer2 = json.loads(out.stdout)
    assert answer2["portfolio_id"] == "p2" and answer2["request_id"] != answer["request_id"]
    assert answer2["stress"] == msgspec.to_builtins(offline.stress_now("p2", {"AAA": 0.25, "BBB": 0.75}))

    # nothing to stress: dead-lettered, and the CLI says it got no answer
    t0 = time.monotonic()
    out = await _stress_cli("--bus", kafka_url, "--portfolio", "ghost", "--timeout", "6")
    assert out.returncode == 1 and "no answer" in out.stderr and "--weights" in out.stderr
    assert time.monotonic() - t0 < 60

    async def dead_letter() -> list[DeadLetter]:
        return [d for r in await bus.read_all("dlq.v1", timeout_s=5)
                for d in [msgspec.json.decode(r.value, type=DeadLetter)] if "ghost" in d.reason]

    [dl] = await wait_until(dead_letter, 30, interval=0.5, what="the refused request's dead letter")
    assert "unknown portfolio 'ghost'" in dl.reason and b'"portfolio_id":"ghost"' in dl.raw
    assert [u.request_id for u in await updates() if u.request_id] == [answer["request_id"], answer2["request_id"]]

    assert processes.stop(risk) == 0, processes.log(risk)[-3000:]
    await bus.close()


async def _at_least(fetch, n: int) -> bool:
    return len(await fetch()) >= n


async def test_the_risk_consumer_reads_its_benchmark_from_kafka(kafka_url, processes, tmp_path):
    """``benchmark`` in the risk config: the consumer marks it from ticks.v1 like any symbol; the
    answer's beta and beta-scaled crash equal the same code fed the same events offline."""
    import pandas as pd

    px = pd.read_csv(ROOT / "tests" / "data" / "stock_prices_20.csv", index_col=0)[["JPM", "BAC"]].dropna().iloc[-40:]
    day = 86_400 * S
    fill = Fill(fill_id="f1", order_id="o1", portfolio_id="pb", symbol="JPM", side="buy", quantity=1000,
                price=float(px["JPM"].iloc[0]), ts_event=T0, ts_proc=0)
    ticks = [Tick(symbol=s, venue="test", kind="trade", ts_event=T0 + d * day + i, ts_recv=T0 + d * day + i,
                  price=float(p), size=1.0)
             for d, (_, row) in enumerate(px.iterrows()) for i, (s, p) in enumerate(row.items(), 1)]
    cfg_file = tmp_path / "risk.toml"
    cfg_file.write_text('[risk]\nbenchmark = "BAC"\nlookback = 60\n')
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["fills.v1", "ticks.v1", "features.v1", "targets.v1", "risk.v1",
                             "risk-requests.v1", "alerts.v1", "health.v1", "dlq.v1"])
    risk = processes.start("consume", "risk", "--bus", kafka_url, "--config", str(cfg_file), name="risk-bench")
    await _publish(bus, "fills.v1", [fill])
    await _publish(bus, "ticks.v1", ticks)
    await wait_until(lambda: _caught_up(bus, "risk", ["fills.v1", "ticks.v1"]), 90, interval=0.5,
                     what="risk to mark the ticks")
    out = await _stress_cli("--bus", kafka_url, "--portfolio", "pb", "--timeout", "60")
    assert out.returncode == 0, out.stderr + processes.log(risk)[-3000:]
    answer = json.loads(out.stdout)
    offline = RiskProcessor(RiskConfig.load(cfg_file))
    offline.process([Envelope("fills.v1", 0, 0, None, fill)])
    offline.process([Envelope("ticks.v1", 0, i, None, t) for i, t in enumerate(ticks)])
    expected = offline.update_for(offline.book("pb"), answer["ts_event"])
    assert answer["benchmark"] == "BAC" and answer["beta"] is not None
    assert answer["beta"] == pytest.approx(expected.beta, rel=1e-9)
    assert answer["stress"] == msgspec.to_builtins(offline.stress_now("pb"))
    assert "BAC falls -30%" in answer["stress"][0]["method"]
    assert processes.stop(risk) == 0, processes.log(risk)[-3000:]
    await bus.close()
