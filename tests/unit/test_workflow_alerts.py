"""Workflow limit alerts with hysteresis on real prices: one breach and one resolve per episode."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.helpers import PRICES_CSV, SMALL_WORKFLOW_CONFIG, WORKFLOW_SYMBOLS
from ticktide.cli import main

SYMBOLS = "GOOG,AAPL,AMZN,GE,AMD,WMT,BAC,T,XOM,RRC,BBY,MA,PFE,JPM,SBUX"


def _run(tmp, start, end, symbols, config=None, report=False) -> dict:
    args = ["workflow", "run", "--prices", str(PRICES_CSV), "--symbols", symbols, "--start", start,
            "--end", end, "--out", str(tmp), "--no-progress"]
    if config:
        (tmp / "wf.toml").write_text(config)
        args += ["--config", str(tmp / "wf.toml")]
    assert main(args + ([] if report else ["--no-report"])) == 0
    return json.loads((tmp / "results.json").read_text())


def _episodes(alerts) -> dict:
    """Per (limit, symbol), the limit alerts in order; checks each resolve answers the open breach."""
    by_key = defaultdict(list)
    for a in alerts:
        if a["type"] in ("limit_breach", "limit_resolved"):
            by_key[(a["limit"], a["symbol"])].append(a)
    for key, seq in by_key.items():
        kinds = [a["type"] for a in seq]
        assert kinds == ["limit_breach", "limit_resolved"] * (len(seq) // 2) + ["limit_breach"] * (len(seq) % 2), key
        for breach, resolved in zip(seq[::2], seq[1::2]):
            assert resolved["resolves"] == breach["alert_id"] and resolved["date"] > breach["date"]
    return by_key


@pytest.mark.parametrize("start,end", [("2014-01-01", "2016-01-01"), ("2007-06-01", "2009-06-01")])
def test_two_years_with_default_limits_give_few_alerts_each_resolved_or_open(tmp_path, start, end):
    r = _run(tmp_path, start, end, SYMBOLS)
    limit_alerts = [a for a in r["alerts"] if a["type"] in ("limit_breach", "limit_resolved")]
    assert 0 < len(limit_alerts) < 20
    by_key = _episodes(r["alerts"])
    unresolved = [seq[-1]["alert_id"] for seq in by_key.values() if len(seq) % 2]
    assert sorted(unresolved) == sorted(b["alert_id"] for b in r["open_limit_breaches"])
    if start == "2014-01-01":
        assert not unresolved  # every breach of this calm window has its resolve
    else:  # the 2008 crash: drawdown and volatility are still above their limits at the end
        assert {b["limit"] for b in r["open_limit_breaches"]} <= {"max_drawdown", "max_volatility"}
    summary = {(g["type"], g["limit"]): g["count"] for g in r["alert_summary"]}
    for kind in ("limit_breach", "limit_resolved"):
        for limit in ("max_position", "max_volatility", "max_drawdown"):
            assert summary.get((kind, limit), 0) == sum(1 for a in limit_alerts
                                                        if a["type"] == kind and a["limit"] == limit)


def test_a_tight_position_limit_gives_one_breach_resolve_pair_per_episode(tmp_path):
    config = SMALL_WORKFLOW_CONFIG + "[risk.limits]\nmax_position = 0.2\nmin_episode_bars = 5\n"
    r = _run(tmp_path, "2016-06-01", "2016-12-31", ",".join(WORKFLOW_SYMBOLS), config, report=True)
    by_key = _episodes(r["alerts"])
    pairs = [(seq[i], seq[i + 1]) for seq in by_key.values() for i in range(0, len(seq) - 1, 2)]
    assert len(pairs) >= 2, r["alert_summary"]
    for breach, resolved in pairs:
        assert breach["limit"] == "max_position" and "breaches the limit 20.00%" in breach["message"]
        assert "back below the limit 20.00%" in resolved["message"]
        bars = int(resolved["message"].split(" after ")[1].split(" bars")[0])
        assert bars >= 5
    report = (tmp_path / "report.md").read_text()
    assert "## Alerts" in report and "| type | limit | count | first | last |" in report
    for g in r["alert_summary"]:
        assert f"| {g['type']} | {g['limit'] or ''} | {g['count']} | {g['first']} | {g['last']} |" in report
