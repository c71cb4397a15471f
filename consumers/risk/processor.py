"""RiskProcessor: fills.v1, ticks.v1, features.v1, targets.v1 -> risk.v1, alerts.v1.

- Fills move positions and cash (one Book per ``portfolio_id``; a fill_id is
  applied once, so replays do not double-count).
- Ticks (trade price, or the quote mid), bars (close) and features
  (``price``, else ``mid``) mark symbols; ticks/features also give spreads for
  the liquidity stress. The config's ``benchmark`` symbol is marked and
  sampled like any other: its returns give beta, alpha, tracking error and
  information ratio, and the beta-scaled market crash.
- Equity and symbol prices are sampled per ``sample_interval_s`` of event
  time (per bar/day); the metrics use the sampled returns over ``lookback``.
- risk.v1 is published after every fill, whenever a sample bucket closes, and
  otherwise at most once per ``publish_interval_s`` of event time; each
  update is checked against the limits with hysteresis (``limits``): one
  ``limit_breach`` alert when an episode starts (``alert_id =
  risk:<portfolio>:<limit>:<symbol>:<ts_event>``) and one ``limit_resolved``
  when it clears (``details.resolves`` = the breach's id); the gauge
  ``ticktide_risk_limit_breached`` is 1 while an episode of the limit is open.
- A TargetPortfolio triggers the stress scenarios on its weights, published
  as a risk.v1 update of that portfolio with ``stress`` filled in.
- A StressRequest (risk-requests.v1, e.g. from ``ticktide stress``) runs them
  on demand, on its weights or the portfolio's current book; the update
  carries its ``request_id``. A request without weights for a portfolio the
  consumer has not seen is dead-lettered (there is no book to stress).

State is portfolio-wide (fills.v1 and targets.v1 have one partition), so the
consumer is meant to run as one instance. Every partition's snapshot carries
the whole state with a version number; ``restore`` keeps the newest, so the
input offsets recorded with each partition's snapshot are never older than
the state (at most, a few marks are re-applied, which is idempotent).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable, Sequence

import msgspec
import numpy as np
from streaming.metrics import gauge

from consumers.risk import limits as risk_limits
from consumers.risk.config import RiskConfig
from consumers.risk.metrics import simple_returns
from consumers.risk.portfolio import Book, Mark, Sampler, new_sampler
from consumers.risk.report import build_update
from consumers.risk.stress import run_all
from schemas.events import Alert, Bar, FeatureVector, Fill, RiskUpdate, StressRequest, TargetPortfolio, Tick
from schemas.topics import ALERTS, RISK
from streaming.processor import Envelope, Output, Processor, ProcessResult
from streaming.state import SingleInstanceState

log = logging.getLogger(__name__)

PORTFOLIO_VALUE = gauge("ticktide_risk_portfolio_value", "Latest portfolio value", ["portfolio"])
RISK_LEVEL = gauge("ticktide_risk_level", "Latest risk level per portfolio: 0 low, 1 medium, 2 high", ["portfolio"])
RISK_LEVEL_CODES = {"low": 0, "medium": 1, "high": 2}
RISK_BREACHES = gauge("ticktide_risk_limit_breached", "1 while a risk limit is breached",
                      ["portfolio", "limit"])


class RiskState(msgspec.Struct):
    version: int = 0
    books: dict[str, Book] = msgspec.field(default_factory=dict)
    marks: dict[str, Mark] = msgspec.field(default_factory=dict)
    prices: dict[str, Sampler] = msgspec.field(default_factory=dict)
    spreads: dict[str, float] = msgspec.field(default_factory=dict)
    last_publish: dict[str, int] = msgspec.field(default_factory=dict)
    episodes: dict[str, risk_limits.Episode] = msgspec.field(default_factory=dict)  # open breaches



class RiskProcessor(SingleInstanceState, Processor):
    name = "risk"
    state_type = RiskState

    def __init__(self, config: RiskConfig | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.config = config or RiskConfig()
        self.inputs = tuple(self.config.inputs)
        self.outputs = (RISK.name, ALERTS.name)
        self.clock = clock
        self.state = RiskState()
        self._interval_ns = int(round(self.config.publish_interval_s * 1e9))
        self._stress_cfg = self.config.stress_config()
        self._bar_ns = max(1, int(round(self.config.sample_interval_s * 1e9)))
        if self.config.limits.cooldown_s is not None:
            log.warning("risk: [limits] cooldown_s is no longer used: a breach alerts once when it starts "
                        "and once when it clears (see breach_tolerance, min_episode_bars)")

    # -- book keeping -------------------------------------------------------------
    def book(self, portfolio_id: str) -> Book:
        b = self.state.books.get(portfolio_id)
        if b is None:
            c = self.config
            b = Book(portfolio_id=portfolio_id, initial_cash=c.initial_cash, cash=c.initial_cash,
                     equity=new_sampler(c.sample_interval_s, c.lookback))
            self.state.books[portfolio_id] = b
        return b

    def _mark(self, symbol: str, price: float | None, ts: int, spread: float | None = None) -> bool:
        if price is None or not math.isfinite(price) or price <= 0:
            return False
        m = self.state.marks.get(symbol)
        if m is not None and ts < m.ts:
            return False
        self.state.marks[symbol] = Mark(price, ts)
        if spread is not None and math.isfinite(spread) and spread >= 0:
            self.state.spreads[symbol] = spread
        sampler = self.state.prices.get(symbol)
        if sampler is None:
            sampler = self.state.prices[symbol] = new_sampler(self.config.sample_interval_s, self.config.lookback)
        sampler.observe(ts, price)
        return True

    def _history(self, symbols) -> dict[str, np.ndarray]:
        return {s: simple_returns(self.state.prices[s].series())[-self.config.lookback:]
                for s in symbols if s in self.state.prices}

    def _benchmark(self) -> tuple[str, np.ndarray] | None:
        name = self.config.benchmark
        if not name or name not in self.state.prices:
            return None
        return name, simple_returns(self.state.prices[name].series())[-self.config.lookback:]

    # -- updates ------------------------------------------------------------------
    def update_for(self, book: Book, ts_event: int, stress=None, ts_ingest: int = 0) -> RiskUpdate:
        marks = self.state.marks
        value = book.value(marks)
        c = self.config
        return build_update(
            portfolio_id=book.portfolio_id, ts_event=ts_event, ts_proc=self.clock(), value=value,
            cash=book.cash, positions=dict(sorted(book.positions.items())), exposures=book.exposures(marks),
            sectors=c.sectors, pnl=book.pnl(marks), returns=simple_returns(book.equity.series()),
            lookback=c.lookback, periods_per_year=c.periods_per_year, stress=stress, ts_ingest=ts_ingest,
            risk_free_rate=c.risk_free_rate, benchmark=c.benchmark,
            benchmark_returns=bench[1] if (bench := self._benchmark()) else None)

    def stress_now(self, portfolio_id: str, weights: dict[str, float] | None = None):
        """Run the stress scenarios on ``weights`` (default: the book's current exposures)."""
        book = self.book(portfolio_id)
        w = weights if weights is not None else book.exposures(self.state.marks)
        return run_all(w, self._history(w), self.state.spreads, self._stress_cfg, self._benchmark())

    def _request_problem(self, ev: StressRequest) -> str | None:
        if ev.weights is None:
            if ev.portfolio_id not in self.state.books:
                return (f"stress request {ev.request_id}: unknown portfolio {ev.portfolio_id!r} "
                        "(no fill or target seen); send weights to stress")
            return None
        bad = sorted(s for s, w in ev.weights.items() if not math.isfinite(w))
        if bad:
            return f"stress request {ev.request_id}: non-finite weights for {', '.join(bad)}"
        return None

    def _publish(self, book: Book, ts_event: int, result: ProcessResult, stress=None, ts_ingest: int = 0,
                 request_id: str | None = None) -> None:
        update = self.update_for(book, ts_event, stress, ts_ingest)
        update.request_id = request_id
        self.state.last_publish[book.portfolio_id] = ts_event
        result.outputs.append(Output(RISK.name, update))
        PORTFOLIO_VALUE.labels(book.portfolio_id).set(update.value)
        if update.risk_level is not None:
            RISK_LEVEL.labels(book.portfolio_id).set(RISK_LEVEL_CODES[update.risk_level])
        self._check_limits(book.portfolio_id, update, result)

    def _check_limits(self, portfolio_id: str, update: RiskUpdate, result: ProcessResult) -> None:
        lim = self.config.limits
        bar = update.ts_event // self._bar_ns
        episodes = self.state.episodes
        for t in risk_limits.step(episodes, portfolio_id, update, lim, bar):
            alert = (risk_limits.breach_alert(t, portfolio_id, update, lim.breach_tolerance) if t.kind == "breach"
                     else risk_limits.resolved_alert(t, portfolio_id, update))
            result.outputs.append(Output(ALERTS.name, alert))
        open_limits = {ep.limit for key, ep in episodes.items() if key.startswith(f"{portfolio_id}:")}
        for limit in risk_limits.LIMITS:
            RISK_BREACHES.labels(portfolio_id, limit).set(1 if limit in open_limits else 0)

    def _after_mark(self, ts: int, result: ProcessResult, ts_ingest: int = 0) -> None:
        for book in self.state.books.values():
            closed = book.equity.observe(ts, book.value(self.state.marks))
            last = self.state.last_publish.get(book.portfolio_id)
            if closed or last is None or ts - last >= self._interval_ns:
                self._publish(book, ts, result, ts_ingest=ts_ingest)

    # -- Processor -----------------------------------------------------------------
    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        for env in batch:
            ev = env.event
            self.state.version += 1
            if isinstance(ev, Fill):
                book = self.book(ev.portfolio_id)
                if not math.isfinite(ev.price) or not math.isfinite(ev.quantity) or ev.quantity < 0:
                    result.rejected.append((env, "fill with a non-finite price or a negative quantity"))
                    continue
                if not book.apply(ev):
                    continue
                if ev.symbol not in self.state.marks:
                    self._mark(ev.symbol, ev.price, ev.ts_event)
                book.equity.observe(ev.ts_event, book.value(self.state.marks))
                self._publish(book, ev.ts_event, result, ts_ingest=ev.ts_ingest)
            elif isinstance(ev, Tick):
                if ev.kind == "trade":
                    ok = self._mark(ev.symbol, ev.price, ev.ts_event)
                elif ev.bid is not None and ev.ask is not None and ev.bid > 0 and ev.ask >= ev.bid:
                    mid = (ev.bid + ev.ask) / 2
                    ok = self._mark(ev.symbol, mid, ev.ts_event, (ev.ask - ev.bid) / mid)
                else:
                    ok = False
                if ok:
                    self._after_mark(ev.ts_event, result, ev.ts_recv)
            elif isinstance(ev, Bar):
                if self._mark(ev.symbol, ev.close, ev.ts_event):
                    self._after_mark(ev.ts_event, result, ev.ts_ingest)
            elif isinstance(ev, FeatureVector):
                mid, spread = ev.values.get("mid"), ev.values.get("spread")
                price = ev.price if ev.price is not None else mid
                rel = spread / mid if spread is not None and mid else None
                if self._mark(ev.symbol, price, ev.ts_event, rel):
                    self._after_mark(ev.ts_event, result, ev.ts_ingest)
            elif isinstance(ev, TargetPortfolio):
                book = self.book(ev.portfolio_id)
                stress = self.stress_now(ev.portfolio_id, dict(ev.weights))
                self._publish(book, ev.ts_event, result, stress=stress, ts_ingest=ev.ts_ingest)
            elif isinstance(ev, StressRequest):
                problem = self._request_problem(ev)
                if problem:
                    result.rejected.append((env, problem))
                    continue
                weights = dict(ev.weights) if ev.weights is not None else None
                stress = self.stress_now(ev.portfolio_id, weights)
                self._publish(self.book(ev.portfolio_id), ev.ts_event, result, stress=stress,
                              ts_ingest=ev.ts_ingest, request_id=ev.request_id)
            else:
                result.rejected.append((env, f"risk does not handle {type(ev).__name__}"))
        return result
