"""``ticktide workflow run``: the historical workflow end to end.

Config (TOML, every table optional)::

    [workflow]
    warmup = 252            # price rows replayed before --start (history only, no trading)
    close_time = "21:00"    # UTC time stamped on each day's bars
    benchmark = "SPY"       # optional (or [risk] benchmark, or --benchmark): a price-file column
                            # replayed as bars, compared with and drawn on the equity chart

    [portfolio]             # consumers.portfolio.config.PortfolioConfig
    [execution]             # consumers.execution.processor.ExecutionConfig
    [risk]                  # consumers.risk.config.RiskConfig (sectors default to the portfolio's)
    [features]              # streaming.kernels.config.FeatureConfig
    [alerts]                # consumers.alerts.config.AlertsConfig: destinations get the run's alerts

The API document's keys (``risk_profile``, ``rebalancing_frequency`` and the
aliases in ``ticktide.workflow.profiles``) are accepted too and resolved
into these tables first; explicit keys override a profile's preset.
    [history]               # producers.history.config.HistoryConfig (runs without --prices)

The workflow sets the portfolio universe to ``--symbols``, its ``active_from``
to the first day on or after ``--start``, and the risk consumer's initial cash
to the execution's. The daily portfolio return series is the account valued
at each day's closes after that day's fills (cash + positions, fees and
slippage included), from the first traded day; the reported risk metrics are
``consumers.risk.metrics.risk_metrics`` over that whole series (empyrical
conventions) with the portfolio's ``risk_free_rate`` (stated in the results)
and, with a benchmark, beta, alpha, tracking error and information ratio
against the benchmark's daily returns over the same days. Stress results come
from the risk consumer's last update that carried them (it runs them on every
TargetPortfolio).
"""

from __future__ import annotations

import asyncio
import json
import logging
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from consumers.execution.processor import ExecutionConfig, ExecutionProcessor
from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.processor import PortfolioProcessor
from consumers.portfolio.risk_models import estimate, risk_contributions
from consumers.risk.config import RiskConfig
from consumers.risk.metrics import risk_metrics
from consumers.risk.processor import RiskProcessor
from producers.history.config import HistoryConfig
from streaming.config import read_toml
from ticktide.workflow.analytics import (ROLLING_WINDOW, attribution, failed_rebalances, realized_costs,
                                         rolling_stats)
from streaming.tables import standard_json
from ticktide.workflow.data import load_prices, select
from ticktide.workflow.pipeline import Collected, Progress, replay
from ticktide.workflow.profiles import DOCUMENT_KEYS, resolve

log = logging.getLogger("ticktide.workflow")


class WorkflowSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    warmup: int | None = None  # default: the portfolio lookback
    close_time: str = "21:00"
    benchmark: str | None = None


@dataclass
class WorkflowConfig:
    workflow: WorkflowSettings
    portfolio: PortfolioConfig
    execution: ExecutionConfig
    risk: RiskConfig
    features: object | None = None
    alerts: object | None = None
    history: HistoryConfig | None = None
    source: str | None = None  # the TOML file, named in error messages

    @classmethod
    def load(cls, path: str | None) -> "WorkflowConfig":
        cfg = cls.from_mapping(read_toml(path) if path else {})
        cfg.source = str(path) if path else None
        return cfg

    @classmethod
    def from_mapping(cls, raw: dict) -> "WorkflowConfig":
        if not isinstance(raw, dict):
            raise ValueError("the config must be a table of tables")
        data = resolve(raw)
        unknown = set(data) - {"workflow", "portfolio", "execution", "risk", "features", "alerts", "history"}
        if unknown:
            raise ValueError(f"unknown config tables: {', '.join(sorted(unknown))} (tables: workflow, portfolio, "
                             "execution, risk, features, alerts, history; or the document's keys: "
                             f"{', '.join(DOCUMENT_KEYS)})")
        for name, table in data.items():
            if not isinstance(table, dict):
                raise ValueError(f"{name}: must be a table, not {table!r:.40}")
        features = None
        if "features" in data:
            from streaming.kernels.config import FeatureConfig

            features = msgspec.convert(data["features"], FeatureConfig)
        alerts = None
        if "alerts" in data:
            from consumers.alerts.config import AlertsConfig

            alerts = AlertsConfig.from_mapping(data["alerts"])
        settings = msgspec.convert(data.get("workflow", {}), WorkflowSettings)
        risk = RiskConfig.from_mapping(data.get("risk", {}))
        if settings.benchmark and not risk.benchmark:
            risk = msgspec.structs.replace(risk, benchmark=settings.benchmark)
        return cls(settings, PortfolioConfig.from_mapping(data.get("portfolio", {})),
                   ExecutionConfig.from_mapping(data.get("execution", {})), risk, features, alerts,
                   HistoryConfig.from_mapping(data.get("history", {})))


def check_universe(cfg: WorkflowConfig, symbols: list[str]) -> None:
    """Refuse a run whose weights cannot sum to 1 under the max weight (every rebalance would be infeasible)."""
    c = cfg.portfolio.constraints
    if c.bounds or len(symbols) * c.max_weight >= 1.0 - 1e-9:
        return
    need = math.ceil(1.0 / c.max_weight - 1e-9)
    raise ValueError(f"portfolio.constraints.max_weight {c.max_weight:g} with {len(symbols)} symbol(s) cannot hold "
                     f"100 %: give at least {need} symbols, or raise max_weight (a risk_profile sets it: "
                     "conservative 0.2, moderate 0.3, aggressive 0.5)")


def build_processors(cfg: WorkflowConfig, symbols: list[str], first_day: pd.Timestamp,
                     job_id: str | None = None) -> list:
    """The live processors, configured for this run (same classes as ``ticktide consume``): features,
    portfolio, execution, risk, and alerts when the config has alert destinations.

    The portfolio id is ``job:<id>`` (``job:local`` when none is given): a backtest's orders,
    fills and risk updates never carry a live portfolio's id.
    """
    from consumers.features import FeaturesProcessor

    check_universe(cfg, symbols)
    pcfg = msgspec.structs.replace(cfg.portfolio, symbols=list(symbols), active_from=first_day.isoformat(),
                                   portfolio_id=f"job:{job_id or 'local'}")
    rcfg = msgspec.structs.replace(cfg.risk, initial_cash=cfg.execution.initial_cash,
                                   sectors=cfg.risk.sectors or dict(cfg.portfolio.sectors),
                                   risk_free_rate=cfg.portfolio.risk_free_rate)
    features = FeaturesProcessor(cfg.features) if cfg.features is not None else FeaturesProcessor()
    stages = [features, PortfolioProcessor(pcfg, source=cfg.source), ExecutionProcessor(cfg.execution),
              RiskProcessor(rcfg)]
    if cfg.alerts is not None and any(d.enabled for d in cfg.alerts.destinations):
        from consumers.alerts.processor import AlertsProcessor

        # the run's alerts go to the destinations as the live alerts consumer sends them; health
        # monitoring watches live components, which a replay has none of
        health = msgspec.structs.replace(cfg.alerts.health, enabled=False)
        stages.append(AlertsProcessor(msgspec.structs.replace(cfg.alerts, health=health)))
    return stages


def _day(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, tz="UTC").date().isoformat()


def ledger(close: pd.DataFrame, fills, first_day: pd.Timestamp, initial_cash: float, close_time: str):
    """Daily account value, position weights and cash from the fills and each day's closes."""
    h, m = (int(x) for x in close_time.split(":"))
    px = close.loc[first_day:].ffill()
    fills = sorted(fills, key=lambda f: (f.ts_event, f.fill_id))
    cash, pos, i = initial_cash, {}, 0
    values, weights, cash_by_day = [], [], []
    for day, row in px.iterrows():
        cutoff = int((day + pd.Timedelta(hours=h, minutes=m)).value)
        while i < len(fills) and fills[i].ts_event <= cutoff:
            f = fills[i]
            sign = 1.0 if f.side == "buy" else -1.0
            pos[f.symbol] = pos.get(f.symbol, 0.0) + sign * f.quantity
            cash -= sign * f.quantity * f.price + f.fee
            i += 1
        mv = {s: q * float(row[s]) for s, q in pos.items() if abs(q) > 1e-12}
        value = cash + sum(mv.values())
        values.append(value)
        cash_by_day.append(cash)
        weights.append({s: v / value for s, v in sorted(mv.items())})
    return (pd.Series(values, index=px.index), pd.DataFrame(weights, index=px.index).fillna(0.0),
            pd.Series(cash_by_day, index=px.index))


def _clean(x):
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def summary(out: Collected, close: pd.DataFrame, symbols: list[str]) -> dict:
    """The API document's summary counts of a run."""
    replayed = close[list(symbols)]
    return {
        "symbols_processed": len(symbols),
        # a symbol with at least one valid (positive) close in the replay: bars were built from it
        "symbols_preprocessed": int((replayed > 0).any().sum()),
        "symbols_with_features": len({f.symbol for f in out.features}),
        "portfolio_optimized": bool(out.targets),
        "risk_assessed": bool(out.risk),
        "trades_executed": len(out.fills),
    }


def alert_summary(alerts) -> list[dict]:
    """Alerts grouped by type and limit: count, first and last date (the report's table)."""
    groups: dict[tuple[str, str], dict] = {}
    for a in sorted(alerts, key=lambda a: a.ts_event):
        limit = a.details.get("limit") or ""
        g = groups.setdefault((a.type, limit), {"type": a.type, "limit": limit or None, "count": 0,
                                                "first": _day(a.ts_event)})
        g["count"] += 1
        g["last"] = _day(a.ts_event)
    return [groups[k] for k in sorted(groups)]


def open_breaches(alerts) -> list[dict]:
    """Limit breaches without a ``limit_resolved``: still open at the end of the run."""
    resolved = {a.details.get("resolves") for a in alerts if a.type == "limit_resolved"}
    return [{"date": _day(a.ts_event), "alert_id": a.alert_id, "limit": a.details.get("limit"),
             "symbol": a.symbol, "observed": a.details.get("observed")}
            for a in alerts if a.type == "limit_breach" and a.alert_id not in resolved]


def build_results(out: Collected, close: pd.DataFrame, symbols: list[str], first_day: pd.Timestamp,
                  start: str, end: str, cfg: WorkflowConfig) -> tuple[dict, dict]:
    close_time = cfg.workflow.close_time
    values, weights, cash = ledger(close, out.fills, first_day, cfg.execution.initial_cash, close_time)
    returns = values.pct_change().iloc[1:]
    bench_name = cfg.risk.benchmark
    bench_values = close[bench_name].loc[first_day:].ffill() if bench_name in close.columns else None
    bench_returns = bench_values.pct_change().iloc[1:] if bench_values is not None else None
    metrics = risk_metrics(returns.to_numpy(), periods=cfg.risk.periods_per_year, lookback=None,
                           risk_free=cfg.portfolio.risk_free_rate,
                           benchmark=bench_returns.to_numpy() if bench_returns is not None else None)
    level = metrics.pop("risk_level")
    # the API document's names: VaR/CVaR at 95 % are the historical ones
    metrics["var_95"], metrics["cvar_95"] = metrics["var_95_historical"], metrics["cvar_95_historical"]
    stressed = [u for u in out.risk if u.stress]
    final_w = dict(out.targets[-1].weights) if out.targets else {}
    contrib: dict[str, float] = {}
    if final_w:
        window = close.loc[: pd.Timestamp(out.targets[-1].ts_event, tz="UTC")]
        window = window[list(final_w)].dropna().tail(cfg.portfolio.lookback + 1)
        _, cov = estimate(window, cfg.portfolio.risk_model, cfg.portfolio.frequency, cfg.portfolio.n_factors)
        rc = risk_contributions(np.array(list(final_w.values())), cov.to_numpy())
        contrib = {s: float(v) for s, v in zip(final_w, rc)}
    last = out.targets[-1] if out.targets else None
    results = {
        "summary": summary(out, close, symbols),
        "symbols": list(symbols),
        "start": start, "end": end,
        "first_trading_day": first_day.date().isoformat(),
        "days": int(len(values)),
        "initial_cash": cfg.execution.initial_cash,
        "final_value": float(values.iloc[-1]) if len(values) else cfg.execution.initial_cash,
        "total_return": float(values.iloc[-1] / values.iloc[0] - 1.0) if len(values) else 0.0,
        "optimal_weights": final_w,
        "objective": cfg.portfolio.objective,
        "risk_model": cfg.portfolio.risk_model,
        "risk_metrics": metrics,
        "risk_free_rate": cfg.portfolio.risk_free_rate,
        "benchmark": None if bench_values is None else {
            "symbol": bench_name, "total_return": float(bench_values.iloc[-1] / bench_values.iloc[0] - 1.0),
            **{k: v for k, v in risk_metrics(bench_returns.to_numpy(), periods=cfg.risk.periods_per_year,
                                             risk_free=cfg.portfolio.risk_free_rate).items()
               if k in ("annual_return", "volatility", "sharpe", "max_drawdown")}},
        "risk_level": level,
        "risk_assessment": {"risk_level": level, "alerts": len(out.alerts)},
        "optimal_portfolio": {"weights": final_w, "expected_return": last.expected_return if last else None,
                              "expected_volatility": last.expected_volatility if last else None,
                              "sharpe": last.sharpe if last else None},
        "stress_results": [msgspec.to_builtins(s) for s in stressed[-1].stress] if stressed else [],
        "risk_contributions": contrib,
        "rebalances": [{
            "date": _day(r.ts_event), "rebalance_id": r.rebalance_id, "trigger": r.trigger, "status": r.status,
            "previous_weights": r.previous_weights, "new_weights": r.new_weights,
            "expected_return": r.expected_return, "expected_volatility": r.expected_volatility,
            "sharpe": r.sharpe, "turnover": r.turnover, "estimated_costs": r.estimated_costs,
            "conflicts": r.conflicts, "reason": r.reason} for r in out.reports],
        "trades": [{
            "date": _day(f.ts_event), "order_id": f.order_id, "fill_id": f.fill_id, "symbol": f.symbol,
            "side": f.side, "quantity": f.quantity, "price": f.price, "fee": f.fee, "slippage": f.slippage,
            **({"requested_quantity": f.requested_quantity, "reason": f.reason} if f.reason else {})}
            for f in out.fills],
        "scaled_orders": [{"date": _day(o.ts_event), "order_id": o.order_id, "symbol": o.symbol,
                           "side": o.side, "quantity": o.quantity, "reason": o.reason}
                          for o in out.orders if o.status == "accepted" and o.reason],
        "rejected_orders": [{"date": _day(o.ts_event), "order_id": o.order_id, "symbol": o.symbol,
                             "side": o.side, "quantity": o.quantity, "reason": o.reason}
                            for o in out.orders if o.status == "rejected"],
        "alerts": [{"date": _day(a.ts_event), "type": a.type, "severity": a.severity, "message": a.message,
                    "alert_id": a.alert_id, "symbol": a.symbol, "limit": a.details.get("limit"),
                    **({"resolves": a.details["resolves"]} if "resolves" in a.details else {})}
                   for a in out.alerts],
        "alert_summary": alert_summary(out.alerts),
        "open_limit_breaches": open_breaches(out.alerts),
        "dead_letters": out.dead_letters,
        "daily_returns": [{"date": d.date().isoformat(), "return": float(r)} for d, r in returns.items()],
        "daily_cash": [{"date": d.date().isoformat(), "cash": float(c)} for d, c in cash.items()],
    }
    results.update(_honest_extras(out, close.loc[first_day:], values, cfg))
    series = {"values": values, "weights": weights, "returns": returns, "cash": cash,
              "rolling": rolling_stats(returns, cfg.portfolio.risk_free_rate, cfg.risk.periods_per_year),
              "benchmark": None if bench_values is None else bench_values / bench_values.iloc[0] * values.iloc[0]}
    return _clean(results), series


def _honest_extras(out: Collected, close: pd.DataFrame, values: pd.Series, cfg: WorkflowConfig) -> dict:
    """Realized costs, P&L attribution and failed rebalances (``ticktide.workflow.analytics``)."""
    failed = failed_rebalances(out.reports)
    return {"costs": realized_costs(out.reports, out.orders, out.fills, values),
            "attribution": attribution(out.fills, close, cfg.execution.initial_cash),
            "rebalances_ok": sum(1 for r in out.reports if r.status == "ok"),
            "failed_rebalances": failed, "rolling_window": ROLLING_WINDOW}


def with_benchmark(data, close: pd.DataFrame, benchmark: str | None) -> pd.DataFrame:
    """``close`` plus the benchmark's closes on the same days (replayed as bars, never traded)."""
    if not benchmark or benchmark in close.columns:
        return close
    if benchmark not in data.close.columns:
        raise ValueError(f"benchmark {benchmark} is not in the price file (add its closes or choose another "
                         "--benchmark)")
    return close.join(data.close[benchmark].reindex(close.index))


def load_data(prices: str | None, symbols: list[str], start: str, end: str, cfg: WorkflowConfig,
              fetch: dict | None = None):
    """(prices, symbols, the ``data`` section of results.json): from the file, or fetched by symbol and dates
    (the benchmark's history too, when one is set)."""
    warmup = cfg.workflow.warmup if cfg.workflow.warmup is not None else cfg.portfolio.lookback
    if prices:
        data, info = load_prices(prices), {"prices_file": prices}
    else:
        from ticktide.workflow.fetch import fetch_prices

        bench = cfg.risk.benchmark
        wanted = symbols + [bench] if bench and bench not in symbols else symbols
        data, fetched, info = fetch_prices(wanted, start, end, warmup, cfg.history or HistoryConfig(),
                                           **(fetch or {}))
        symbols = [s for s in fetched if s in symbols]
    info = {"price_field": {s: data.price_field.get(s, "close") for s in symbols}, **info}
    return data, symbols, info, warmup


def run_workflow(prices: str | None, symbols: list[str], start: str, end: str, out_dir: str,
                 config: str | None = None, bus: str = "memory://", progress: bool = True,
                 report: bool = True, benchmark: str | None = None, fetch: dict | None = None) -> dict:
    """``prices`` None: fetch by symbol and dates (``fetch``: cache_dir, sources, strict)."""
    t0 = time.monotonic()
    cfg = WorkflowConfig.load(config)
    if benchmark:
        cfg.risk = msgspec.structs.replace(cfg.risk, benchmark=benchmark)
    data, symbols, data_info, warmup = load_data(prices, symbols, start, end, cfg, fetch)
    close, first_day = select(data, symbols, start, end, warmup)
    close = with_benchmark(data, close, cfg.risk.benchmark)
    # the same inputs make the same job id (two runs give identical results)
    job_id = hashlib.sha256(json.dumps([symbols, start, end, Path(config).read_text() if config else ""])
                            .encode()).hexdigest()[:12]
    processors = build_processors(cfg, symbols, first_day, job_id=job_id)
    bar = Progress(len(close), enabled=progress)
    out = asyncio.run(replay(data, close, processors, bus, bar))
    results, series = build_results(out, close, symbols, first_day, start, end, cfg)
    results["data"] = data_info
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    safe, missing = standard_json(results)  # standard JSON: NaN/Infinity become null, with the reason
    if missing:
        safe["null_reasons"] = missing
    (dest / "results.json").write_text(json.dumps(safe, indent=2, allow_nan=False) + "\n")
    if report:
        from ticktide.workflow.report import write_report

        write_report(dest, results, series)
    log.info("workflow: %d days, %d rebalances, %d trades in %.1fs -> %s", len(close),
             len(results["rebalances"]), len(results["trades"]), time.monotonic() - t0, dest)
    return results
