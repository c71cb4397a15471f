"""A real Prometheus (Debian's package, started here on 127.0.0.1) scraping a running
pipeline on the real Kafka broker: simulator -> produce -> consume features -> consume signals.

It runs the project's alert rules (deploy/prometheus/rules/ticktide.rules.yml) with
every window and `for:` shrunk by promtest.fast_rules, checks through the HTTP API
that throughput, latency histograms and lag series are present and moving, then
stops the producer and waits for TicktideFeedStale and TicktideProcessDown to fire.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ROOT
from tests.ops.promtest import RULES_FILE, Prometheus, fast_rules, free_port, require_binary

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

SYMBOLS = "BTCUSDT,ETHUSDT"


def _wait_port(port: int, timeout: float, proc) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port} (exit {proc.poll()})")
            time.sleep(0.1)


@pytest.fixture
def prometheus_factory(tmp_path):
    require_binary("prometheus")  # fail early, before the pipeline starts
    started: list[Prometheus] = []

    def start(jobs: dict[str, list[int]]) -> Prometheus:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        prom = Prometheus(workdir, jobs, fast_rules(RULES_FILE.read_text()))
        started.append(prom)
        return prom.start()

    yield start
    for prom in started:
        prom.stop()


def test_prometheus_sees_the_pipeline_and_fires_the_stale_feed_alert(kafka_url, processes, prometheus_factory):
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - t0, 1)

    # topics as the compose stack creates them
    subprocess.run([sys.executable, "-m", "ticktide.cli", "topics", "create", "--bus", kafka_url],
                   cwd=ROOT, check=True, timeout=60, capture_output=True)
    sim_port, m_prod, m_feat, m_sig = (free_port() for _ in range(4))
    sim = processes.start("simulator", "--port", str(sim_port), "--rate", "50", "--symbols", SYMBOLS)
    _wait_port(sim_port, 20, sim)
    producer = processes.start("produce", "--venue", "binance", "--symbols", SYMBOLS,
                               "--url", f"ws://127.0.0.1:{sim_port}", "--bus", kafka_url,
                               "--metrics-port", str(m_prod), name="producer")
    features = processes.start("consume", "features", "--bus", kafka_url, "--metrics-port", str(m_feat))
    signals = processes.start("consume", "signals", "--bus", kafka_url, "--metrics-port", str(m_sig))
    prom = prometheus_factory({"producer": [m_prod], "features": [m_feat], "signals": [m_sig]})
    mark("prometheus ready")

    def diagnostics() -> str:
        return "\n".join(f"--- {p.args[3]} (exit {p.poll()}):\n{processes.log(p)[-1500:]}"
                         for p in (sim, producer, features, signals)) + f"\n--- prometheus:\n{prom.log()[-1500:]}"

    try:
        # every process is scraped
        prom.wait_for("all three targets up", lambda: sorted(
            r["metric"]["job"] for r in prom.query("up == 1")) == ["features", "producer", "signals"], 45)
        mark("targets up")

        # throughput: ticks in, features out, features consumed by signals
        for what, expr in (
                ("producer publishing ticks", "sum(rate(ticktide_producer_ticks_total[10s])) > 0"),
                ("features consuming ticks",
                 'sum(rate(ticktide_events_in_total{consumer="features",topic="ticks.v1"}[10s])) > 0'),
                ("features publishing",
                 'sum(rate(ticktide_events_out_total{consumer="features",topic="features.v1"}[10s])) > 0'),
                ("signals consuming",
                 'sum(rate(ticktide_events_in_total{consumer="signals",topic="features.v1"}[10s])) > 0')):
            prom.wait_for(what, lambda e=expr: prom.values(e), 45)
        mark("throughput > 0")

        # latency histograms: buckets present, a finite p99
        buckets = prom.query('ticktide_end_to_end_latency_seconds_bucket{consumer="features",topic="features.v1"}')
        les = {r["metric"]["le"] for r in buckets}
        assert len(les) >= 10 and "+Inf" in les, les
        p99 = prom.wait_for("a features p99", lambda: [v for v in prom.values(
            'histogram_quantile(0.99, sum by (le) (rate('
            'ticktide_end_to_end_latency_seconds_bucket{consumer="features"}[10s])))') if math.isfinite(v)], 20)
        assert 0 < p99[0] < 30, p99

        # lag series: one per assigned partition of each group, sampled every scrape
        lag_feat = prom.query('ticktide_consumer_lag{consumer="features",topic="ticks.v1"}')
        assert len(lag_feat) == 6, lag_feat  # ticks.v1 has 6 partitions, all assigned to the one member
        assert prom.query('ticktide_consumer_lag{consumer="signals",topic="features.v1"}')
        prom.wait_for("lag sampled at every scrape", lambda: prom.values(
            'min(count_over_time(ticktide_consumer_lag{consumer="features"}[5s])) >= 4'), 15)

        # moving: counters grow between two reads
        counters = ('sum(ticktide_producer_ticks_total)', 'sum(ticktide_events_in_total{consumer="features"})',
                    'sum(ticktide_end_to_end_latency_seconds_count{consumer="features"})')
        before = [prom.values(q)[0] for q in counters]
        time.sleep(3)
        after = [prom.values(q)[0] for q in counters]
        assert all(b < a for b, a in zip(before, after)), list(zip(counters, before, after))
        mark("metrics moving")

        assert not prom.firing("TicktideFeedStale"), prom.alerts()
        assert not prom.firing("TicktideProcessDown"), prom.alerts()

        # stop the feed: the stale-feed alert (and process-down for the producer) fire
        assert processes.stop(producer) == 0, processes.log(producer)[-2000:]
        mark("producer stopped")
        stale = prom.wait_for("TicktideFeedStale firing", lambda: prom.firing("TicktideFeedStale"), 45)
        mark("TicktideFeedStale firing")
        assert any(a["labels"].get("consumer") == "features" for a in stale), stale
        assert stale[0]["labels"]["severity"] == "critical"
        down = prom.wait_for("TicktideProcessDown firing", lambda: prom.firing("TicktideProcessDown"), 20)
        assert {a["labels"]["job"] for a in down} == {"producer"}, down
        mark("TicktideProcessDown firing")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntimings: {timings}\n{diagnostics()}") from None
    print(f"timings (s since start): {timings}")
    for proc in (features, signals):
        assert processes.stop(proc) == 0, processes.log(proc)[-2000:]
