"""PortfolioProcessor: features.v1 (bar closes) / bars.v1 -> targets.v1, rebalances.v1, alerts.v1.

- Prices: a FeatureVector with ``source="bar"`` (its ``price`` is the close) or
  a Bar. Tick features are ignored (a portfolio is rebalanced on bars).
- Event-time rows: prices are buffered per ``ts_event``; a timestamp closes when
  every universe symbol (config ``symbols``, else every symbol seen) has a
  price at or after it. Closed rows are processed in time order, so the result
  does not depend on how the input partitions interleave (live Kafka or a
  replay). A symbol missing at a row keeps its previous close.
- At each closed row: a rebalance is due on the schedule, or on the
  performance/drift triggers against the prices of the last rebalance. The
  optimizer runs over the last ``lookback`` rows on the symbols with a full
  window; the result is a TargetPortfolio (``rebalance_id =
  <portfolio>:<ts_event>``) and a RebalanceReport. Infeasible constraints give
  an alerts.v1 event (``type="optimizer_infeasible"``) naming them and a report
  with ``status="infeasible"``; the previous targets stay in force and the
  triggers wait for the next scheduled rebalance.

The state is portfolio-wide and features.v1 has 6 partitions, so the
portfolio consumer is a single-instance consumer group: one process reads
every partition. Each partition's snapshot carries the whole state with a
version; ``restore`` keeps the newest (``streaming.state.SingleInstanceState``).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import msgspec
import pandas as pd

from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.optimizer import InfeasibleError, OptimizationError
from consumers.portfolio.rebalance import deviation, drifted_weights, trigger_for
from consumers.portfolio.solve import optimize_window
from schemas.events import Alert, Bar, FeatureVector, RebalanceReport, TargetPortfolio
from schemas.topics import ALERTS, REBALANCES, TARGETS
from streaming.processor import Envelope, Output, Processor, ProcessResult
from streaming.state import SingleInstanceState

log = logging.getLogger(__name__)


class Row(msgspec.Struct, array_like=True):
    ts: int
    prices: dict[str, float]
    ts_ingest: int = 0


class PortfolioState(msgspec.Struct):
    version: int = 0
    rows: list[Row] = msgspec.field(default_factory=list)  # closed rows, forward-filled, oldest first
    pending: dict[int, Row] = msgspec.field(default_factory=dict)  # ts -> prices not yet closed
    last_seen: dict[str, int] = msgspec.field(default_factory=dict)  # symbol -> latest ts_event
    weights: dict[str, float] = msgspec.field(default_factory=dict)  # targets in force
    rebalance_prices: dict[str, float] = msgspec.field(default_factory=dict)
    last_rebalance: int | None = None  # ts of the last attempt
    triggers_paused: bool = False  # after an infeasible attempt, until the next schedule
    rebalances: int = 0



class PortfolioProcessor(SingleInstanceState, Processor):
    name = "portfolio"
    state_type = PortfolioState

    def __init__(self, config: PortfolioConfig | None = None, clock: Callable[[], int] = time.time_ns,
                 source: str | None = None):
        self.config = config or PortfolioConfig()
        self.source = source  # the config file, named in infeasibility messages
        self.inputs = tuple(self.config.inputs)
        self.outputs = (TARGETS.name, REBALANCES.name, ALERTS.name)
        self.clock = clock
        self.state = PortfolioState()
        self._schedule = self.config.schedule_rule()
        self._triggers = self.config.trigger_rule()
        self._constraints = self.config.optimizer_constraints()
        self._active_from = self.config.active_from_ns()

    # -- input ------------------------------------------------------------------
    def _price(self, ev) -> tuple[str, int, float, int] | None:
        if isinstance(ev, FeatureVector):
            if ev.source != "bar" or ev.price is None:
                return None
            return ev.symbol, ev.ts_event, float(ev.price), ev.ts_ingest
        if isinstance(ev, Bar):
            return ev.symbol, ev.ts_event, float(ev.close), ev.ts_ingest
        raise TypeError(f"portfolio does not handle {type(ev).__name__}")

    def _universe(self) -> list[str]:
        return list(self.config.symbols) or sorted(self.state.last_seen)

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        st = self.state
        for env in batch:
            st.version += 1
            try:
                got = self._price(env.event)
            except TypeError as exc:
                result.rejected.append((env, str(exc)))
                continue
            if got is None:
                continue
            sym, ts, price, ingest = got
            if not price > 0:
                result.rejected.append((env, f"price {price!r} is not positive"))
                continue
            if self.config.symbols and sym not in self.config.symbols:
                continue
            if st.rows and ts <= st.rows[-1].ts:
                continue  # late or replayed input for a closed row
            row = st.pending.setdefault(ts, Row(ts, {}))
            row.prices[sym] = price
            row.ts_ingest = max(row.ts_ingest, ingest)
            st.last_seen[sym] = max(st.last_seen.get(sym, ts), ts)
        self._close_rows(result)
        return result

    def _close_rows(self, result: ProcessResult) -> None:
        st = self.state
        universe = self._universe()
        if not universe:
            return
        watermark = min(st.last_seen.get(s, -1) for s in universe)
        for ts in sorted(t for t in st.pending if t <= watermark):
            row = st.pending.pop(ts)
            prev = st.rows[-1].prices if st.rows else {}
            st.rows.append(Row(ts, {**prev, **row.prices}, row.ts_ingest))
            if len(st.rows) > self.config.lookback + 1:
                del st.rows[: len(st.rows) - self.config.lookback - 1]
            self._evaluate(st.rows[-1], result)

    # -- rebalancing ----------------------------------------------------------------
    def _evaluate(self, row: Row, result: ProcessResult) -> None:
        st = self.state
        if len(st.rows) < self.config.min_history + 1:
            return
        if self._active_from is not None and row.ts < self._active_from:
            return
        if self._schedule.due(st.last_rebalance, row.ts):
            trigger = "schedule"
        elif st.triggers_paused:
            return
        else:
            trigger = trigger_for(self._triggers, st.weights, st.rebalance_prices, row.prices)
        if trigger is not None:
            self.rebalance(row, trigger, result)

    def price_frame(self) -> pd.DataFrame:
        """The window of closed rows: one column per symbol with a full window."""
        st = self.state
        df = pd.DataFrame([r.prices for r in st.rows], index=[r.ts for r in st.rows])
        universe = [s for s in self._universe() if s in df.columns]
        return df[universe].dropna(axis=1, how="any")

    def current_weights(self, prices: dict[str, float]) -> dict[str, float]:
        st = self.state
        return drifted_weights(st.weights, st.rebalance_prices, prices) if st.weights else {}

    def rebalance(self, row: Row, trigger: str, result: ProcessResult) -> None:
        st, cfg = self.state, self.config
        pid = cfg.portfolio_id
        rebalance_id = f"{pid}:{row.ts}"
        now = self.clock()
        previous = {s: w for s, w in self.current_weights(row.prices).items() if w}
        st.last_rebalance = row.ts
        report = RebalanceReport(portfolio_id=pid, rebalance_id=rebalance_id, ts_event=row.ts, ts_proc=now,
                                 trigger=trigger, objective=cfg.objective, risk_model=cfg.risk_model,
                                 previous_weights=previous, ts_ingest=row.ts_ingest)
        try:
            prices = self.price_frame()
            if prices.shape[1] == 0:
                raise OptimizationError("no symbol has a full price window")
            res = optimize_window(prices, cfg, current_weights=previous, constraints=self._constraints).result
        except (InfeasibleError, OptimizationError, ValueError) as exc:
            st.triggers_paused = True
            report.status = "infeasible" if isinstance(exc, InfeasibleError) else "error"
            report.conflicts = list(getattr(exc, "conflicts", []))
            report.reason = exc.describe(self.source) if isinstance(exc, InfeasibleError) else str(exc)
            report.new_weights = dict(st.weights)
            result.outputs.append(Output(REBALANCES.name, report))
            result.outputs.append(Output(ALERTS.name, Alert(
                alert_id=f"portfolio:{rebalance_id}:{report.status}", source="portfolio",
                type="optimizer_infeasible" if report.status == "infeasible" else "optimizer_error",
                severity="warning", ts_event=row.ts, ts_proc=now,
                message=f"portfolio {pid}: rebalance ({trigger}) failed, previous targets stay: {report.reason}",
                details={"portfolio_id": pid, "rebalance_id": rebalance_id,
                         "conflicts": ", ".join(report.conflicts), "objective": cfg.objective})))
            log.warning("portfolio %s: %s", pid, report.reason)
            return
        weights = {s: w for s, w in res.weights.items() if abs(w) >= 1e-6}
        st.weights = weights
        st.rebalance_prices = {s: row.prices[s] for s in weights}
        st.triggers_paused = False
        st.rebalances += 1
        report.new_weights = weights
        report.expected_return, report.expected_volatility, report.sharpe = (
            res.expected_return, res.volatility, res.sharpe)
        report.turnover = deviation(weights, previous)
        report.estimated_costs = self._constraints.transaction_cost * report.turnover
        result.outputs.append(Output(TARGETS.name, TargetPortfolio(
            portfolio_id=pid, rebalance_id=rebalance_id, ts_event=row.ts, ts_proc=now, weights=weights,
            previous_weights=previous, trigger=trigger, objective=cfg.objective,
            expected_return=res.expected_return, expected_volatility=res.volatility, sharpe=res.sharpe,
            estimated_costs=report.estimated_costs, ts_ingest=row.ts_ingest,
            prices={s: row.prices[s] for s in sorted(row.prices)})))
        result.outputs.append(Output(REBALANCES.name, report))
