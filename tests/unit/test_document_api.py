"""The API document's examples: risk profiles, rebalancing frequency, config aliases, result names, data_type."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from consumers.portfolio.rebalance import FREQUENCIES
from schemas.events import Bar, RebalanceReport, TargetPortfolio
from ticktide.gateway.auth import TokenStore
from ticktide.gateway.server import create_app
from ticktide.gateway.workflow import check_config
from ticktide.workflow.profiles import ALIASES, PROFILES, profile_numbers
from ticktide.workflow.run import WorkflowConfig
from tests.unit.test_gateway import call, serve, tick, ws_connect  # noqa: F401 - serve is a fixture
from tests.unit.test_gateway_rest import PRICES, FakeWorkflow
from tests.unit.test_gateway_support import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOCUMENT_BODY = {"symbols": ["AAPL", "GOOG", "AMZN", "JPM", "XOM"], "start_date": "2023-01-01",
                 "end_date": "2023-12-31", "config": {"risk_profile": "moderate", "rebalancing_frequency": "monthly"}}


def setting(cfg: WorkflowConfig, dotted: str):
    """``portfolio.constraints.max_weight`` -> that value of the loaded config."""
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


# -- risk profiles ------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PROFILES))
def test_each_risk_profile_sets_its_preset_and_explicit_keys_override(name):
    numbers = profile_numbers(name)
    cfg = WorkflowConfig.from_mapping({"risk_profile": name})
    assert {k: setting(cfg, k) for k in numbers} == numbers
    override = WorkflowConfig.from_mapping({"risk_profile": name, "portfolio": {"constraints": {"max_weight": 0.9}},
                                            "risk": {"limits": {"max_drawdown": 0.42}}})
    assert override.portfolio.constraints.max_weight == 0.9 and override.risk.limits.max_drawdown == 0.42
    changed = ("portfolio.constraints.max_weight", "risk.limits.max_drawdown")
    kept = {k: v for k, v in numbers.items() if k not in changed}
    assert {k: setting(override, k) for k in kept} == kept


def test_profiles_are_ordered_and_set_the_same_keys():
    c, m, a = (profile_numbers(n) for n in ("conservative", "moderate", "aggressive"))
    assert set(c) == set(m) == set(a)
    for key in ("portfolio.constraints.max_weight", "portfolio.target_volatility", "execution.max_position_weight",
                "risk.limits.max_position", "risk.limits.max_volatility", "risk.limits.max_drawdown"):
        assert c[key] < m[key] < a[key], key
    for numbers in (c, m, a):  # a target at the optimizer's cap passes the pre-trade check
        assert numbers["execution.max_position_weight"] > numbers["portfolio.constraints.max_weight"]


def test_unknown_risk_profile_names_the_allowed_ones():
    with pytest.raises(ValueError, match="risk_profile: 'yolo' is not one of conservative, moderate, aggressive"):
        WorkflowConfig.from_mapping({"risk_profile": "yolo"})


# -- rebalancing frequency and the other aliases --------------------------------------
@pytest.mark.parametrize("frequency", FREQUENCIES)
@pytest.mark.parametrize("key", ["rebalancing_frequency", "rebalancing_schedule"])
def test_rebalancing_frequency_maps_onto_the_schedule(key, frequency):
    assert WorkflowConfig.from_mapping({key: frequency}).portfolio.schedule.frequency == frequency
    assert WorkflowConfig.from_mapping({key: frequency}).portfolio.schedule_rule().frequency == frequency


def test_unknown_rebalancing_frequency_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'hourly' is not one of daily, weekly, monthly, quarterly"):
        WorkflowConfig.from_mapping({"rebalancing_frequency": "hourly"})


ALIAS_CASES = [
    ({"performance_threshold": 0.07}, "portfolio.triggers.performance", 0.07),
    ({"risk_limits": {"max_position_size": 0.2}}, "risk.limits.max_position", 0.2),
    ({"risk_limits": {"max_portfolio_volatility": 0.2}}, "risk.limits.max_volatility", 0.2),
    ({"risk_limits": {"max_drawdown": 0.15}}, "risk.limits.max_drawdown", 0.15),
    ({"trading": {"max_trades_per_day": 10}}, "execution.max_trades_per_day", 10),
    ({"rebalancing_schedule": "weekly"}, "portfolio.schedule.frequency", "weekly"),
    ({"rebalancing_frequency": "quarterly"}, "portfolio.schedule.frequency", "quarterly"),
]


@pytest.mark.parametrize("config, dotted, expected", ALIAS_CASES, ids=[c[1] for c in ALIAS_CASES])
def test_each_document_key_sets_its_setting(config, dotted, expected):
    before = setting(WorkflowConfig.from_mapping({}), dotted)
    assert before != expected  # the alias changes something
    assert setting(WorkflowConfig.from_mapping(config), dotted) == expected


def test_every_alias_is_covered_by_a_case():
    covered = {next(iter(c)) if not isinstance(next(iter(c.values())), dict)
               else f"{next(iter(c))}.{next(iter(next(iter(c.values()))))}" for c, _, _ in ALIAS_CASES}
    assert set(ALIASES) - covered == {"trading.paper_trading", "notifications.webhook_url"}  # tested below


def test_paper_trading_true_is_accepted_and_false_is_refused():
    assert WorkflowConfig.from_mapping({"trading": {"paper_trading": True}}).execution is not None
    with pytest.raises(ValueError, match="paper_trading: false is not supported: ticktide has only the paper broker"):
        WorkflowConfig.from_mapping({"trading": {"paper_trading": False, "max_trades_per_day": 10}})
    with pytest.raises(ValueError, match="'yes' is not true or false"):
        WorkflowConfig.from_mapping({"trading": {"paper_trading": "yes"}})


def test_webhook_url_becomes_an_alert_destination_and_switches_off_are_accepted():
    cfg = WorkflowConfig.from_mapping({"notifications": {"email": False, "slack": None,
                                                         "webhook_url": "https://hooks.example.com/x"}})
    (dest,) = cfg.alerts.destinations
    assert (dest.kind, dest.url, dest.enabled) == ("webhook", "https://hooks.example.com/x", True)
    with pytest.raises(ValueError, match="notifications.email: workflow notifications go to a webhook only"):
        WorkflowConfig.from_mapping({"notifications": {"email": "me@example.com"}})
    with pytest.raises(ValueError, match="is not an http"):
        WorkflowConfig.from_mapping({"notifications": {"webhook_url": "hooks.example.com"}})


def test_the_documents_whole_example_config_loads():
    cfg = WorkflowConfig.from_mapping({
        "rebalancing_schedule": "monthly", "performance_threshold": 0.05,
        "risk_limits": {"max_position_size": 0.20, "max_portfolio_volatility": 0.20, "max_drawdown": 0.15},
        "trading": {"paper_trading": True, "max_trades_per_day": 10},
        "notifications": {"email": False, "slack": False, "webhook_url": "https://hooks.example.com/x"}})
    assert cfg.portfolio.schedule.frequency == "monthly" and cfg.portfolio.triggers.performance == 0.05
    limits = cfg.risk.limits
    assert (limits.max_position, limits.max_volatility, limits.max_drawdown) == (0.2, 0.2, 0.15)
    assert cfg.execution.max_trades_per_day == 10 and cfg.alerts.destinations[0].kind == "webhook"


@pytest.mark.parametrize("config, message", [
    ({"risk_limits": {"max_position": 0.2}},
     "risk_limits.max_position: unknown key; risk_limits takes max_position_size"),
    ({"risk_limits": 0.2}, "risk_limits: must be a table"),
    ({"risk_limits": {"max_drawdown": "15%"}}, "'15%' is not a positive number"),
    ({"performance_threshold": True}, "True is not a positive number"),
    ({"trading": {"max_trades_per_day": 0}}, "0 is not a whole number of at least 1"),
    ({"rebalancing_frequency": "weekly", "portfolio": {"schedule": {"frequency": "daily"}}},
     "contradicts portfolio.schedule.frequency = 'daily'"),
    ({"rebalancing_frequency": "weekly", "rebalancing_schedule": "monthly"}, "contradicts rebalancing_frequency"),
    ({"risk_profiles": "moderate"}, "unknown config tables: risk_profiles"),
])
def test_bad_document_keys_name_the_key_and_the_fix(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        WorkflowConfig.from_mapping(config)


def test_alias_and_explicit_key_that_agree_are_fine():
    cfg = WorkflowConfig.from_mapping({"rebalancing_frequency": "weekly",
                                       "portfolio": {"schedule": {"frequency": "weekly"}}})
    assert cfg.portfolio.schedule.frequency == "weekly"


# -- REST ------------------------------------------------------------------------
@pytest.fixture
async def rest_server():
    app = create_app(TokenStore([TOKEN]), prices=PRICES, run_workflow=FakeWorkflow(), check_config=check_config)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_rest_accepts_the_documents_payload_and_refuses_an_unknown_frequency_with_422(rest_server):
    async with aiohttp.ClientSession() as session:
        async with session.post(rest_server.make_url("/workflows"), json=DOCUMENT_BODY, headers=AUTH) as r:
            assert r.status == 202, await r.text()
        bad = {**DOCUMENT_BODY, "config": {"risk_profile": "moderate", "rebalancing_frequency": "hourly"}}
        async with session.post(rest_server.make_url("/workflows"), json=bad, headers=AUTH) as r:
            assert r.status == 422
            assert (await r.json())["error"] == ("config: rebalancing_frequency: 'hourly' is not one of daily, "
                                                 "weekly, monthly, quarterly")
        paper = {**DOCUMENT_BODY, "config": {"trading": {"paper_trading": False}}}
        async with session.post(rest_server.make_url("/workflows"), json=paper, headers=AUTH) as r:
            assert r.status == 422 and "only the paper broker" in (await r.json())["error"]


# -- data_type subscriptions ---------------------------------------------------------
def bar(symbol: str) -> Bar:
    return Bar(symbol=symbol, ts_event=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0, interval="1d")


async def test_data_type_market_data_subscribes_ticks_and_bars_of_the_symbols(serve):  # noqa: F811
    server, hub = await serve()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        reply = await call(ws, {"action": "subscribe", "symbols": ["AAPL", "MSFT"], "data_type": "market_data"})
        assert reply == {"type": "subscribed", "subscriptions": {"bars": ["AAPL", "MSFT"], "ticks": ["AAPL", "MSFT"]}}
        assert hub.dispatch("ticks", tick("GOOG", 1.0)) == 0 and hub.dispatch("bars", bar("GOOG")) == 0
        assert hub.dispatch("ticks", tick("AAPL", 1.0)) == 1 and hub.dispatch("bars", bar("MSFT")) == 1
        got = [await ws.receive_json(timeout=5) for _ in range(2)]
        assert [(e["topic"], e["symbol"]) for e in got] == [("ticks", "AAPL"), ("bars", "MSFT")]

        reply = await call(ws, {"action": "unsubscribe", "symbols": ["MSFT"], "data_type": "market_data"})
        assert reply["subscriptions"] == {"bars": ["AAPL"], "ticks": ["AAPL"]}
        reply = await call(ws, {"action": "unsubscribe", "data_type": "market_data"})
        assert reply["subscriptions"] == {}
        assert hub.dispatch("ticks", tick("AAPL", 2.0)) == 0


async def test_every_data_type_and_topics_together(serve):  # noqa: F811
    server, hub = await serve()
    async with aiohttp.ClientSession() as session:
        ws = await ws_connect(session, server)
        expected = {"features": ["features"], "signals": ["signals"], "risk": ["risk"], "alerts": ["alerts"],
                    "portfolio": ["rebalances", "targets"]}
        for data_type, topics in expected.items():
            reply = await call(ws, {"action": "subscribe", "data_type": data_type})
            assert reply["type"] == "subscribed" and set(topics) <= set(reply["subscriptions"]), data_type
            await call(ws, {"action": "unsubscribe", "data_type": data_type})
        reply = await call(ws, {"action": "subscribe", "topics": ["signals"], "data_type": "portfolio",
                                "symbols": ["AAPL"]})
        assert reply["subscriptions"] == {"rebalances": ["AAPL"], "signals": ["AAPL"], "targets": ["AAPL"]}
        # targets have no symbol: every subscriber of the topic gets them
        target = TargetPortfolio(portfolio_id="main", rebalance_id="r1", ts_event=1, ts_proc=1, weights={"AAPL": 1.0})
        assert hub.dispatch("targets", target) == 1
        assert (await ws.receive_json(timeout=5))["event"]["weights"] == {"AAPL": 1.0}
        report = RebalanceReport(portfolio_id="main", rebalance_id="r1", ts_event=1, ts_proc=1, trigger="schedule",
                                 objective="max_sharpe", status="ok")
        assert hub.dispatch("rebalances", report) == 1
        assert (await ws.receive_json(timeout=5))["topic"] == "rebalances"
        reply = await call(ws, {"action": "subscribe", "symbols": ["AAPL"], "data_type": "quotes"})
        assert reply["type"] == "error"
        assert reply["error"] == ("unknown data_type 'quotes'; data types: market_data, features, signals, risk, "
                                  "alerts, portfolio")


def test_welcome_lists_the_new_topics():
    from ticktide.gateway.hub import TOPICS

    assert {"bars", "targets", "rebalances"} <= set(TOPICS)
    assert json.dumps(TOPICS)  # plain names for the welcome frame


# -- results and report names; notifications.webhook_url delivers the run's alerts ----
async def test_results_carry_the_documents_names_and_the_webhook_gets_the_alerts(tmp_path):
    import asyncio

    from tests.helpers import PRICES_CSV, FlakyWebhook
    from ticktide.workflow.run import run_workflow

    async with FlakyWebhook() as hook:
        config = tmp_path / "doc.toml"
        config.write_text(f'rebalancing_frequency = "weekly"\n[workflow]\nwarmup = 60\n[portfolio]\nlookback = 60\n'
                          f'min_history = 40\n[risk_limits]\nmax_position_size = 0.05\n'  # a limit the run breaches
                          f'[notifications]\nwebhook_url = "{hook.url}"\nemail = false\n')
        symbols = ["AAPL", "MA", "JPM", "XOM", "WMT", "PFE"]
        r = await asyncio.to_thread(run_workflow, str(PRICES_CSV), symbols + ["GOOG"], "2016-06-01", "2016-12-31",
                                    str(tmp_path / "out"), config=str(config), progress=False)
        delivered = hook.delivered
    m = r["risk_metrics"]
    assert m["var_95"] == m["var_95_historical"] and m["cvar_95"] == m["cvar_95_historical"]
    assert m["var_95"] != m["var_95_parametric"] and m["volatility"] > 0 and m["max_drawdown"] < 0
    assert r["risk_assessment"]["risk_level"] == r["risk_level"] in ("low", "medium", "high")
    assert r["optimal_portfolio"]["weights"] == r["optimal_weights"] and r["optimal_portfolio"]["expected_volatility"]
    assert r["summary"] == {"symbols_processed": 7, "symbols_preprocessed": 7, "symbols_with_features": 7,
                            "portfolio_optimized": True, "risk_assessed": True, "trades_executed": len(r["trades"])}
    assert r["trades"]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["summary"] == r["summary"] and saved["risk_metrics"]["var_95"] == m["var_95"]
    report = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert report[:4] == ["# ticktide workflow report", "", "## Summary", ""]
    assert f"| trades executed (`trades_executed`) | {len(r['trades'])} |" in report[:14]
    assert "| portfolio optimized (`portfolio_optimized`) | yes |" in report[:14]
    breaches = [a for a in r["alerts"] if a["type"] == "limit_breach" and "5.00% (max_position)" in a["message"]]
    assert breaches and delivered  # at most the destination's rate limit (20 a minute) of them
    bodies = [json.dumps(body) for body in delivered]  # breaches, and the resolves of those that cleared
    assert all("limit_breach" in b or "limit_resolved" in b for b in bodies)
    assert any("limit_breach" in b for b in bodies)


# -- the three profiles on real prices ---------------------------------------------
def test_profiles_give_portfolios_of_increasing_volatility_on_real_prices(tmp_path):
    from tests.helpers import PRICES_CSV
    from ticktide.workflow.run import run_workflow

    symbols = ["AAPL", "AMZN", "GE", "WMT", "XOM", "JPM", "PFE", "MA", "T", "BAC"]
    vols, expected = {}, {}
    for name in PROFILES:
        config = tmp_path / f"{name}.toml"
        config.write_text(f'risk_profile = "{name}"\n')
        r = run_workflow(str(PRICES_CSV), symbols, "2016-04-11", "2018-04-11", str(tmp_path / name),
                         config=str(config), progress=False, report=False)
        assert r["objective"] == PROFILES[name]["portfolio"]["objective"]
        assert all(x["status"] == "ok" for x in r["rebalances"]) and not r["rejected_orders"], name
        cap = PROFILES[name]["portfolio"]["constraints"]["max_weight"]
        assert max(r["optimal_weights"].values()) <= cap + 1e-6
        vols[name] = r["risk_metrics"]["volatility"]
        expected[name] = r["optimal_portfolio"]["expected_volatility"]
    assert vols["conservative"] < vols["moderate"] < vols["aggressive"], vols
    assert expected["conservative"] < expected["moderate"] < expected["aggressive"], expected


def test_readme_tables_are_the_codes():
    from pathlib import Path

    from ticktide.gateway.ws import DATA_TYPES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = lambda v: "off" if v is None else (f"{v:g}" if isinstance(v, (int, float)) else f"`{v}`")  # noqa: E731
    for key in profile_numbers("moderate"):
        row = f"| `{key}` | " + " | ".join(shown(profile_numbers(n)[key]) for n in PROFILES) + " |"
        assert row in readme, row
    for alias in ALIASES:
        assert f"\n| `{alias}` | " in readme, alias
    for data_type, topics in DATA_TYPES.items():
        assert f"| `{data_type}` | " + ", ".join(f"`{t}` ({t}.v1)" for t in topics) + " |" in readme, data_type


def test_cli_refuses_a_bad_document_key_in_one_line(tmp_path, capsys):
    from tests.helpers import PRICES_CSV
    from ticktide.cli import main

    config = tmp_path / "doc.toml"
    config.write_text('risk_profile = "moderate"\n[trading]\npaper_trading = false\n')
    rc = main(["workflow", "run", "--prices", str(PRICES_CSV), "--symbols", "AAPL,MA,JPM,XOM,WMT", "--start",
               "2016-06-01", "--end", "2016-12-31", "--config", str(config), "--out", str(tmp_path / "out"),
               "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("ticktide workflow run: trading.paper_trading: false is not supported")
    assert not (tmp_path / "out").exists()


def test_too_few_symbols_for_the_profiles_max_weight_is_refused_before_replaying():
    import pandas as pd

    from ticktide.workflow.run import build_processors

    cfg = WorkflowConfig.from_mapping({"risk_profile": "moderate"})
    with pytest.raises(ValueError, match=r"max_weight 0.3 with 2 symbol\(s\) cannot hold 100 %: give at least 4"):
        build_processors(cfg, ["AAPL", "MSFT"], pd.Timestamp("2023-01-02", tz="UTC"))
    assert len(build_processors(cfg, ["A", "B", "C", "D"], pd.Timestamp("2023-01-02", tz="UTC"))) == 4


def test_a_document_key_overrides_the_profile_too():
    cfg = WorkflowConfig.from_mapping({"risk_profile": "conservative", "risk_limits": {"max_drawdown": 0.15},
                                       "rebalancing_frequency": "quarterly"})
    assert cfg.risk.limits.max_drawdown == 0.15 and cfg.portfolio.schedule.frequency == "quarterly"
    assert cfg.risk.limits.max_position == PROFILES["conservative"]["risk"]["limits"]["max_position"]
