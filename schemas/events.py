"""The v1 event contracts.

Every event is a msgspec Struct encoded as JSON so any Kafka client can read a
topic. Times are integers in nanoseconds since the Unix epoch:

- ``ts_event``: when it happened in the market (or, for derived events, the
  ``ts_event`` of the input that caused it);
- ``ts_ingest``: wall-clock time the originating market data entered the
  system (a tick's ``ts_recv``), carried through every stage so end-to-end
  latency can be measured anywhere downstream;
- ``ts_proc``: wall-clock time the stage that emitted the event produced it.

Fields are additive-only within v1: a breaking change is a new topic version.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Side = Literal["buy", "sell"]
FeatureValues = dict[str, float | None]


class Tick(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A trade or a top-of-book quote from one venue, in canonical form."""

    symbol: str  # canonical: upper case, no separator (BTCUSDT, BTCUSD)
    venue: str
    kind: Literal["trade", "quote"]
    ts_event: int
    ts_recv: int
    price: float | None = None
    size: float | None = None
    side: Side | None = None  # aggressor side for trades
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    trade_id: str | None = None
    seq: int | None = None  # venue sequence number where the venue has one
    flags: list[str] = msgspec.field(default_factory=list)  # validation flags


class Bar(msgspec.Struct, kw_only=True):
    """An OHLCV bar; ``ts_event`` is the bar's close time."""

    symbol: str
    ts_event: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    interval: str = "1d"
    source: str = "replay"
    ts_ingest: int = 0


class FeatureVector(msgspec.Struct, kw_only=True):
    """Rolling features for one symbol after one input (trade, quote or bar).

    ``seq`` counts the inputs of this symbol the features reflect, so two runs
    can be compared row by row. A value is ``None`` until its window is full.
    """

    symbol: str
    ts_event: int
    ts_ingest: int
    ts_proc: int
    seq: int
    source: Literal["tick", "bar"]
    price: float | None
    values: FeatureValues


class Signal(msgspec.Struct, kw_only=True):
    signal_id: str
    symbol: str
    type: str  # rule or strategy name
    action: Literal["review", "consider_trade", "buy", "sell"]
    urgency: Literal["low", "medium", "high"]
    strength: float
    reason: str
    ts_event: int
    ts_ingest: int
    ts_proc: int
    seq: int = 0  # the FeatureVector.seq that triggered it
    features: FeatureValues = msgspec.field(default_factory=dict)


class TargetPortfolio(msgspec.Struct, kw_only=True):
    portfolio_id: str
    rebalance_id: str
    ts_event: int
    ts_proc: int
    weights: dict[str, float]
    previous_weights: dict[str, float] = msgspec.field(default_factory=dict)
    trigger: str = "schedule"  # schedule | performance | drift | manual
    objective: str = "max_sharpe"
    expected_return: float | None = None
    expected_volatility: float | None = None
    sharpe: float | None = None
    estimated_costs: float = 0.0
    ts_ingest: int = 0
    # the market prices the weights were computed at (symbol -> price at ts_event), so an
    # executor values the account at the same prices however far its own price feed has moved
    prices: dict[str, float] = msgspec.field(default_factory=dict)


class RebalanceReport(msgspec.Struct, kw_only=True):
    """What one rebalance decided (or why it could not): published with every TargetPortfolio.

    ``status`` is ``infeasible`` when the optimizer found no portfolio within the
    constraints; ``conflicts`` then names them and the previous targets stay in force.
    """

    portfolio_id: str
    rebalance_id: str
    ts_event: int
    ts_proc: int
    trigger: str  # schedule | performance | drift | manual
    objective: str
    status: Literal["ok", "infeasible", "error"] = "ok"
    risk_model: str = "sample"
    previous_weights: dict[str, float] = msgspec.field(default_factory=dict)
    new_weights: dict[str, float] = msgspec.field(default_factory=dict)
    expected_return: float | None = None
    expected_volatility: float | None = None
    sharpe: float | None = None
    turnover: float = 0.0  # sum of |new - previous| weights
    estimated_costs: float = 0.0  # fraction of portfolio value
    conflicts: list[str] = msgspec.field(default_factory=list)
    reason: str = ""
    ts_ingest: int = 0


class Order(msgspec.Struct, kw_only=True):
    order_id: str  # deterministic: a replay produces the same ids
    portfolio_id: str
    symbol: str
    side: Side
    quantity: float
    ts_event: int
    ts_proc: int
    status: Literal["accepted", "rejected"] = "accepted"
    reason: str = ""
    target_weight: float | None = None
    rebalance_id: str = ""
    ts_ingest: int = 0


class Fill(msgspec.Struct, kw_only=True):
    fill_id: str
    order_id: str
    portfolio_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float = 0.0
    slippage: float = 0.0
    ts_event: int
    ts_proc: int
    ts_ingest: int = 0
    reason: str = ""  # why the fill is smaller than the order (a cash-floor scale-down), else ""
    requested_quantity: float | None = None  # the order's quantity when the fill was scaled down


class StressResult(msgspec.Struct, kw_only=True):
    scenario: str
    portfolio_loss: float  # fraction of portfolio value, negative is a loss
    worst_position: str | None = None
    worst_position_loss: float | None = None
    method: str = ""  # one line: how the loss was computed


class RiskUpdate(msgspec.Struct, kw_only=True):
    portfolio_id: str
    ts_event: int
    ts_proc: int
    value: float
    cash: float
    positions: dict[str, float] = msgspec.field(default_factory=dict)
    exposures: dict[str, float] = msgspec.field(default_factory=dict)
    sector_exposures: dict[str, float] = msgspec.field(default_factory=dict)
    pnl: float = 0.0
    volatility: float | None = None
    var_95_historical: float | None = None
    var_95_parametric: float | None = None
    cvar_95_historical: float | None = None
    cvar_95_parametric: float | None = None
    max_drawdown: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    risk_free_rate: float = 0.0  # annual, used by sharpe and sortino
    annual_return: float | None = None
    calmar: float | None = None
    benchmark: str | None = None  # the symbol beta, alpha, tracking error, information ratio refer to
    beta: float | None = None
    alpha: float | None = None  # annualized
    tracking_error: float | None = None  # annualized
    information_ratio: float | None = None  # annualized
    risk_level: Literal["low", "medium", "high"] | None = None
    stress: list[StressResult] = msgspec.field(default_factory=list)
    ts_ingest: int = 0
    request_id: str | None = None  # set when the update answers a StressRequest


class StressRequest(msgspec.Struct, kw_only=True):
    """Run the stress scenarios now (risk-requests.v1 -> the risk consumer).

    On ``weights`` (symbol -> fraction of value) when given, else on the
    portfolio's current book. Answered on risk.v1 by an update of the portfolio
    with ``stress`` filled in and this ``request_id``."""

    request_id: str
    portfolio_id: str
    ts_event: int
    weights: dict[str, float] | None = None
    ts_ingest: int = 0


class Alert(msgspec.Struct, kw_only=True):
    alert_id: str
    source: str  # the component that raised it
    type: str  # e.g. sequence_gap, stale_feed, limit_breach, quality
    severity: Literal["info", "warning", "critical"]
    message: str
    ts_event: int
    ts_proc: int
    symbol: str | None = None
    details: dict[str, str | float | int | bool | None] = msgspec.field(default_factory=dict)


class DeadLetter(msgspec.Struct, kw_only=True):
    """Input that could not be processed, with why and where it came from."""

    stage: str  # producer:<venue>, decode, process, validate, ...
    reason: str
    raw: bytes  # the original bytes (base64 in JSON)
    ts_proc: int
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    venue: str | None = None


class Health(msgspec.Struct, kw_only=True):
    component: str
    instance: str
    status: Literal["ok", "degraded", "failing"]
    ts_proc: int
    events_in: int = 0
    events_out: int = 0
    errors: int = 0
    error_rate: float = 0.0
    queue_size: int = 0
    throughput: float = 0.0  # events per second since the last report
    reason: str = ""  # why the status is not ok, e.g. "broker 127.0.0.1:9092 unreachable for 42 s"


EVENT_TYPES: tuple[type[msgspec.Struct], ...] = (
    Tick, Bar, FeatureVector, Signal, TargetPortfolio, RebalanceReport, Order, Fill,
    RiskUpdate, StressRequest, Alert, DeadLetter, Health, StressResult,
)
