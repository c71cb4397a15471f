"""deploy/grafana: the dashboard's panel queries select only metrics the code exports,
parse as PromQL (promtool), cover what the issue asks for, and the provisioning
files point at the compose stack's Prometheus and the mounted dashboard folder."""

from __future__ import annotations

import json
import re

import pytest

from tests.ops.promtest import COMPOSE, DASHBOARD, GRAFANA_DIR, exported_metrics, promtool, referenced_metrics, yaml

PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}
DASH = json.loads(DASHBOARD.read_text())


def _panels(panels):
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


PANELS = [p for p in _panels(DASH["panels"]) if p.get("type") != "row"]
TARGETS = [(p["title"], t) for p in PANELS for t in p.get("targets", [])]


def test_dashboard_shape():
    assert DASH["uid"] and DASH["title"]
    ids = [p["id"] for p in _panels(DASH["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in PANELS:
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t.get("expr"), f"panel {p['title']!r} has an empty query"


def test_panels_use_the_provisioned_datasource():
    ds = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    uids = {d["uid"] for d in ds if d["type"] == "prometheus"}
    assert any(d["url"] == "http://prometheus:9090" for d in ds)
    for p in PANELS:
        assert p["datasource"]["uid"] in uids, p["title"]
        for t in p["targets"]:
            assert t.get("datasource", p["datasource"])["uid"] in uids, p["title"]


def test_dashboard_provider_reads_the_mounted_folder():
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/ticktide.yml").read_text())["providers"][0]
    path = provider["options"]["path"]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]


EXPORTED = exported_metrics()


@pytest.mark.parametrize("title,target", TARGETS, ids=[f"{t}:{q['refId']}" for t, q in TARGETS])
def test_panel_query_refers_to_exported_metrics(title, target):
    refs = referenced_metrics(target["expr"])
    assert refs, f"{title}: no metric in {target['expr']!r}"
    for name, labels in refs.items():
        if name in PROMETHEUS_SERIES:
            continue
        assert name in EXPORTED, (f"panel {title!r} queries {name}, which no module in ticktide/, streaming/, producers/ "
                                  f"or consumers/ registers")
        assert labels <= EXPORTED[name], f"panel {title!r}: {name} has no label(s) {labels - EXPORTED[name]}"


def test_panel_queries_are_valid_promql(tmp_path):
    """Every query, with Grafana's variables filled in, as a recording rule for `promtool check rules`."""
    rules = [{"record": f"ticktide_dashboard:panel_{i}",
              "expr": re.sub(r"\$\{?__\w+\}?", "1m", t["expr"])} for i, (_, t) in enumerate(TARGETS)]
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


REQUIRED = {  # what the issue asks the dashboard to show -> a pattern one query must match
    "throughput per topic": r"sum by \(topic\) \(rate\(ticktide_events_out_total",
    "end-to-end latency p50": r"histogram_quantile\(0\.5, .*ticktide_end_to_end_latency_seconds_bucket",
    "end-to-end latency p99": r"histogram_quantile\(0\.99, .*ticktide_end_to_end_latency_seconds_bucket",
    "consumer lag per group": r"sum by \(consumer\) \(ticktide_consumer_lag\)",
    "dead letters": r"ticktide_dead_letters_total",
    "websocket reconnects": r"ticktide_ws_reconnects_total",
    "websocket gaps": r"ticktide_ws_gaps_total",
    "signals per minute": r"ticktide_signals_total.*\* 60",
    "portfolio value": r"ticktide_risk_portfolio_value",
    "risk level": r"ticktide_risk_level\b",
}


@pytest.mark.parametrize("what", sorted(REQUIRED))
def test_dashboard_shows(what):
    assert any(re.search(REQUIRED[what], t["expr"]) for _, t in TARGETS), f"no panel shows {what}"
