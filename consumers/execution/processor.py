"""ExecutionProcessor: targets.v1 + market prices -> orders.v1, fills.v1 (paper broker).

Prices come from features.v1 (``price``), bars.v1 (close) or ticks.v1 (trade
price). Processing is in event time, so the output does not depend on how the
input topics interleave:

- a target waits until every symbol it touches (target, positions, pending
  orders) has a price at or after its ``ts_event``; then the account is valued
  at the target's own ``prices`` (else the latest price at or before its
  ``ts_event``) and the orders are planned (``broker.plan_orders``);
- an accepted order fills at the first price of its symbol after its
  ``ts_event``, as soon as that price is known; the fills of one time are
  applied sells first, then the buys, scaled down together (with a reason)
  if cash would go below ``cash_floor`` (``broker.fill_batch``);
- a ``rebalance_id`` already handled is skipped, so a replay produces no
  duplicate orders (order and fill ids are deterministic anyway).

Accounts, cash, positions, pending orders and the handled rebalance ids are the
state, snapshotted to ``changelog.execution.v1`` by the runner, so a restart
resumes them. Fills need the first price after each order: the last
``price_history`` prices per symbol are kept, so the price feed must not run
more than that ahead of targets.v1. The state is portfolio-wide: run one instance (targets.v1 has
one partition; prices come from every partition of their topic).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import msgspec

from consumers.execution.broker import Account, BrokerConfig, Prices, fill_batch, plan_orders
from schemas.events import Bar, FeatureVector, Order, TargetPortfolio, Tick
from schemas.topics import FILLS, ORDERS
from streaming.config import TomlConfig
from streaming.processor import Envelope, Output, Processor, ProcessResult
from streaming.state import SingleInstanceState


class ExecutionConfig(BrokerConfig, TomlConfig, kw_only=True, forbid_unknown_fields=True):
    toml_section = "execution"

    inputs: list[str] = msgspec.field(default_factory=lambda: ["targets.v1", "features.v1"])


class ExecutionState(msgspec.Struct):
    version: int = 0
    accounts: dict[str, Account] = msgspec.field(default_factory=dict)
    prices: Prices = msgspec.field(default_factory=Prices)
    waiting: list[TargetPortfolio] = msgspec.field(default_factory=list)
    pending: list[Order] = msgspec.field(default_factory=list)
    handled: list[str] = msgspec.field(default_factory=list)  # rebalance ids, most recent last



class ExecutionProcessor(SingleInstanceState, Processor):
    name = "execution"
    state_type = ExecutionState

    def __init__(self, config: ExecutionConfig | None = None, clock: Callable[[], int] = time.time_ns):
        self.config = config or ExecutionConfig()
        self.inputs = tuple(self.config.inputs)
        self.outputs = (ORDERS.name, FILLS.name)
        self.clock = clock
        self.state = ExecutionState()

    def account(self, portfolio_id: str) -> Account:
        acct = self.state.accounts.get(portfolio_id)
        if acct is None:
            acct = self.state.accounts[portfolio_id] = Account(portfolio_id, self.config.initial_cash)
        return acct

    @staticmethod
    def _price(ev) -> tuple[str, int, float] | None:
        if isinstance(ev, FeatureVector):
            return (ev.symbol, ev.ts_event, ev.price) if ev.price is not None else None
        if isinstance(ev, Bar):
            return ev.symbol, ev.ts_event, ev.close
        if isinstance(ev, Tick):
            return (ev.symbol, ev.ts_event, ev.price) if ev.kind == "trade" and ev.price is not None else None
        raise TypeError(f"execution does not handle {type(ev).__name__}")

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        st = self.state
        for env in batch:
            st.version += 1
            ev = env.event
            if isinstance(ev, TargetPortfolio):
                if ev.rebalance_id in st.handled or any(t.rebalance_id == ev.rebalance_id for t in st.waiting):
                    continue
                bad = [s for s, w in ev.weights.items() if not math.isfinite(w)]
                if bad:
                    result.rejected.append((env, f"non-finite target weights for {', '.join(bad)}"))
                    continue
                st.waiting.append(ev)
                st.waiting.sort(key=lambda t: (t.ts_event, t.rebalance_id))
            else:
                try:
                    got = self._price(ev)
                except TypeError as exc:
                    result.rejected.append((env, str(exc)))
                    continue
                if got is None:
                    continue
                sym, ts, price = got
                if not (math.isfinite(price) and price > 0):
                    result.rejected.append((env, f"price {price!r} is not positive"))
                    continue
                st.prices.add(sym, ts, price, self.config.price_history)
            self._advance(result)
        return result

    def _advance(self, result: ProcessResult) -> None:
        """Fill what can be filled, then plan every target whose prices are complete, in time order."""
        st = self.state
        self._fill_pending(result)
        while st.waiting:
            target = st.waiting[0]
            acct = self.account(target.portfolio_id)
            needed = set(target.weights) | set(acct.positions) | {o.symbol for o in st.pending}
            if any((st.prices.latest_ts(s) or -1) < target.ts_event for s in needed):
                return
            st.waiting.pop(0)
            prices = {s: target.prices.get(s) or st.prices.at_or_before(s, target.ts_event) for s in needed}
            for s in sorted(s for s, p in prices.items() if p is None):
                prices[s] = st.prices.after(s, target.ts_event)[1]  # only later prices kept: the first
            orders = plan_orders(acct, target, prices, self.config, self.clock())
            st.handled.append(target.rebalance_id)
            if len(st.handled) > 10_000:
                del st.handled[:5_000]
            for order in orders:
                result.outputs.append(Output(ORDERS.name, order))
                if order.status == "accepted":
                    st.pending.append(order)
            self._fill_pending(result)

    def _fill_pending(self, result: ProcessResult) -> None:
        """Fill orders whose next price is known, in (fill time, order id) order.

        An order whose next price is unknown fills after its symbol's latest price, so
        fills up to that time are final; applying them in one canonical order keeps the
        cash identical (to the bit) however the inputs interleave.
        """
        st = self.state
        ready, waiting, horizon = [], [], None
        for order in st.pending:
            nxt = st.prices.after(order.symbol, order.ts_event)
            if nxt is None:
                waiting.append(order)
                latest = st.prices.latest_ts(order.symbol)
                latest = order.ts_event if latest is None else max(latest, order.ts_event)
                horizon = latest if horizon is None else min(horizon, latest)
            else:
                ready.append((nxt[0], order.order_id, nxt[1], order))
        # canonical order: by fill time, sells before buys (the cash check sees their proceeds)
        ready.sort(key=lambda r: (r[0], r[3].side == "buy", r[1]))
        groups: dict[tuple[int, str], list] = {}
        for ts, _oid, px, order in ready:
            if horizon is not None and ts > horizon:
                waiting.append(order)
                continue
            sized = st.prices.at_or_before(order.symbol, order.ts_event)
            groups.setdefault((ts, order.portfolio_id), []).append((ts, px, sized, order))
        for (_ts, portfolio_id), batch in groups.items():
            for fill in fill_batch(self.account(portfolio_id), batch, self.config, self.clock()):
                result.outputs.append(Output(FILLS.name, fill))
        st.pending = sorted(waiting, key=lambda o: (o.ts_event, o.order_id))
