"""deploy/prometheus: `promtool check config`, `promtool check rules`, `promtool test rules`,
the alerts the issue asks for, and the fast variant the live test runs."""

from __future__ import annotations

import re

import pytest

from tests.ops.promtest import (
    PROM_CONFIG, PROM_DIR, RULES_FILE, exported_metrics, fast_rules, load_rules, parse_duration, promtool,
    range_windows, referenced_metrics, yaml,
)

HERE = PROM_CONFIG.parents[2] / "tests" / "ops"
REQUIRED_ALERTS = {
    "TicktideConsumerLagGrowing", "TicktideFeedStale", "TicktideDeadLetters", "TicktideErrorRateHigh",
    "TicktideEndToEndLatencyHigh", "TicktideProcessDown", "TicktideBrokerUnreachable",
}
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _ok(result):
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result


def test_promtool_check_config():
    out = _ok(promtool("check", "config", str(PROM_CONFIG), cwd=PROM_DIR)).stdout
    assert "1 rule files found" in out  # the rules glob matches the rules file


def test_promtool_check_rules():
    _ok(promtool("check", "rules", str(RULES_FILE)))


def test_promtool_rule_unit_tests():
    """tests/ops/rules_test.yml: the alerts fire (and stay quiet) on synthetic series, real windows."""
    _ok(promtool("test", "rules", "rules_test.yml", cwd=HERE))


def test_required_alerts_exist_with_severity_and_summary():
    rules = load_rules()
    names = {r.get("alert") for r in rules}
    assert REQUIRED_ALERTS <= names, REQUIRED_ALERTS - names
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_rules_only_use_metrics_the_code_exports():
    exported = exported_metrics()
    for rule in load_rules():
        for name, labels in referenced_metrics(rule["expr"]).items():
            if name in PROMETHEUS_SERIES:
                continue
            assert name in exported, f"{rule['alert']}: {name} is not exported by the code"
            assert labels <= exported[name], f"{rule['alert']}: {name} has no label {labels - exported[name]}"


def test_every_alert_is_documented():
    doc = (PROM_CONFIG.parents[2] / "README.md").read_text()
    missing = [r["alert"] for r in load_rules() if r["alert"] not in doc]
    assert not missing, f"explain these alerts in README.md (Operations): {missing}"


def test_fast_variant_keeps_the_rules_and_shrinks_the_windows(tmp_path):
    real = load_rules()
    fast_doc = fast_rules(RULES_FILE.read_text())
    fast = [r for g in fast_doc["groups"] for r in g["rules"]]
    assert [r["alert"] for r in fast] == [r["alert"] for r in real]
    for r, f in zip(real, fast):
        # identical but for the durations
        strip = lambda e: re.sub(r"\[[^\]]*\]", "[]", e)  # noqa: E731
        assert strip(f["expr"]) == strip(r["expr"]), r["alert"]
        for w_fast, w_real in zip(range_windows(f["expr"]), range_windows(r["expr"])):
            assert w_fast <= max(4, w_real / 12 + 1), f["expr"]
        assert parse_duration(f.get("for", "0s")) <= max(1, parse_duration(r.get("for", "0s")) / 12 + 1)
        assert f["labels"] == r["labels"] and f["annotations"] == r["annotations"]
    path = tmp_path / "fast.rules.yml"
    path.write_text(yaml.safe_dump(fast_doc, sort_keys=False))
    _ok(promtool("check", "rules", str(path)))


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("5m", 300), ("1h30m", 5400), ("0s", 0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
