"""``ticktide workflow run``: the historical workflow end to end.

Config (TOML, every table optional)::

    [workflow]
    warmup = 252            # price rows replayed before --start (history only, no trading)
    close_time = "21:00"    # UTC time stamped on each day's bars

    [portfolio]             # consumers.portfolio.config.PortfolioConfig
    [execution]             # consumers.execution.processor.ExecutionConfig
    [risk]                  # consumers.risk.config.RiskConfig (sectors default to the portfolio's)
    [features]              # streaming.kernels.config.FeatureConfig

The workflow sets the portfolio universe to ``--symbols``, its ``active_from``
to the first day on or after ``--start``, and the risk consumer's initial cash
to the execution's. The daily portfolio return series is the account valued
at each day's closes after that day's fills (cash + positions, fees and
slippage included), from the first traded day; the reported risk metrics are
``consumers.risk.metrics.risk_metrics`` over that whole series (empyrical
conventions). Stress results come from the risk consumer's last update that
carried them (it runs them on every TargetPortfolio).
"""

from __future__ import annotations

import asyncio
import json
import logging
import hashlib
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
from streaming.config import read_toml
from ticktide.workflow.data import load_prices, select
from ticktide.workflow.pipeline import Collected, Progress, replay

log = logging.getLogger("ticktide.workflow")


class WorkflowSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    warmup: int | None = None  # default: the portfolio lookback
    close_time: str = "21:00"


@dataclass
class WorkflowConfig:
    workflow: WorkflowSettings
    portfolio: PortfolioConfig
    execution: ExecutionConfig
    risk: RiskConfig
    features: object | None = None

    @classmethod
    def load(cls, path: str | None) -> "WorkflowConfig":
        data = read_toml(path) if path else {}
        unknown = set(data) - {"workflow", "portfolio", "execution", "risk", "features"}
        if unknown:
            raise ValueError(f"unknown config tables: {', '.join(sorted(unknown))}")
        features = None
        if "features" in data:
            from streaming.kernels.config import FeatureConfig

            features = msgspec.convert(data["features"], FeatureConfig)
        return cls(msgspec.convert(data.get("workflow", {}), WorkflowSettings),
                   PortfolioConfig.from_mapping(data.get("portfolio", {})),
                   ExecutionConfig.from_mapping(data.get("execution", {})),
                   RiskConfig.from_mapping(data.get("risk", {})), features)


def build_processors(cfg: WorkflowConfig, symbols: list[str], first_day: pd.Timestamp,
                     job_id: str | None = None) -> list:
    """The four live processors, configured for this run (same classes as ``ticktide consume``).

    The portfolio id is ``job:<id>`` (``job:local`` when none is given): a backtest's orders,
    fills and risk updates never carry a live portfolio's id.
    """
    from consumers.features import FeaturesProcessor

    pcfg = msgspec.structs.replace(cfg.portfolio, symbols=list(symbols), active_from=first_day.isoformat(),
                                   portfolio_id=f"job:{job_id or 'local'}")
    rcfg = msgspec.structs.replace(cfg.risk, initial_cash=cfg.execution.initial_cash,
                                   sectors=cfg.risk.sectors or dict(cfg.portfolio.sectors))
    features = FeaturesProcessor(cfg.features) if cfg.features is not None else FeaturesProcessor()
    return [features, PortfolioProcessor(pcfg), ExecutionProcessor(cfg.execution), RiskProcessor(rcfg)]


def _day(ts_ns: int) -> str:
    return pd.Timestamp(ts_ns, tz="UTC").date().isoformat()


def ledger(close: pd.DataFrame, fills, first_day: pd.Timestamp, initial_cash: float, close_time: str):
    """Daily account value and position weights from the fills and each day's closes."""
    h, m = (int(x) for x in close_time.split(":"))
    px = close.loc[first_day:].ffill()
    fills = sorted(fills, key=lambda f: (f.ts_event, f.fill_id))
    cash, pos, i = initial_cash, {}, 0
    values, weights = [], []
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
        weights.append({s: v / value for s, v in sorted(mv.items())})
    return pd.Series(values, index=px.index), pd.DataFrame(weights, index=px.index).fillna(0.0)


def _clean(x):
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def build_results(out: Collected, close: pd.DataFrame, symbols: list[str], first_day: pd.Timestamp,
                  start: str, end: str, cfg: WorkflowConfig) -> tuple[dict, dict]:
    close_time = cfg.workflow.close_time
    values, weights = ledger(close, out.fills, first_day, cfg.execution.initial_cash, close_time)
    returns = values.pct_change().iloc[1:]
    metrics = risk_metrics(returns.to_numpy(), periods=cfg.risk.periods_per_year, lookback=None)
    level = metrics.pop("risk_level")
    stressed = [u for u in out.risk if u.stress]
    final_w = dict(out.targets[-1].weights) if out.targets else {}
    contrib: dict[str, float] = {}
    if final_w:
        window = close.loc[: pd.Timestamp(out.targets[-1].ts_event, tz="UTC")]
        window = window[list(final_w)].dropna().tail(cfg.portfolio.lookback + 1)
        _, cov = estimate(window, cfg.portfolio.risk_model, cfg.portfolio.frequency, cfg.portfolio.n_factors)
        rc = risk_contributions(np.array(list(final_w.values())), cov.to_numpy())
        contrib = {s: float(v) for s, v in zip(final_w, rc)}
    results = {
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
        "risk_level": level,
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
            "side": f.side, "quantity": f.quantity, "price": f.price, "fee": f.fee, "slippage": f.slippage}
            for f in out.fills],
        "rejected_orders": [{"date": _day(o.ts_event), "order_id": o.order_id, "symbol": o.symbol,
                             "side": o.side, "quantity": o.quantity, "reason": o.reason}
                            for o in out.orders if o.status == "rejected"],
        "alerts": [{"date": _day(a.ts_event), "type": a.type, "severity": a.severity, "message": a.message}
                   for a in out.alerts],
        "dead_letters": out.dead_letters,
        "daily_returns": [{"date": d.date().isoformat(), "return": float(r)} for d, r in returns.items()],
    }
    series = {"values": values, "weights": weights, "returns": returns}
    return _clean(results), series


def run_workflow(prices: str, symbols: list[str], start: str, end: str, out_dir: str,
                 config: str | None = None, bus: str = "memory://", progress: bool = True,
                 report: bool = True) -> dict:
    t0 = time.monotonic()
    cfg = WorkflowConfig.load(config)
    data = load_prices(prices)
    warmup = cfg.workflow.warmup if cfg.workflow.warmup is not None else cfg.portfolio.lookback
    close, first_day = select(data, symbols, start, end, warmup)
    # the same inputs make the same job id (two runs give identical results)
    job_id = hashlib.sha256(json.dumps([symbols, start, end, Path(config).read_text() if config else ""])
                            .encode()).hexdigest()[:12]
    processors = build_processors(cfg, symbols, first_day, job_id=job_id)
    bar = Progress(len(close), enabled=progress)
    out = asyncio.run(replay(data, close, processors, bus, bar))
    results, series = build_results(out, close, symbols, first_day, start, end, cfg)
    dest = Path(out_dir)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if report:
        from ticktide.workflow.report import write_report

        write_report(dest, results, series)
    log.info("workflow: %d days, %d rebalances, %d trades in %.1fs -> %s", len(close),
             len(results["rebalances"]), len(results["trades"]), time.monotonic() - t0, dest)
    return results
