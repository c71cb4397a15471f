"""Paper broker: orders from target weights, pre-trade checks, fills with slippage and fees. Pure.

- Planning (``plan_orders``): the account is valued at the latest prices at or
  before the target's ``ts_event``; every symbol whose weight would change by
  more than ``min_weight_change`` (1 %) gets an order for
  ``|dw| * value / price`` units, largest ``|dw|`` first.
- Pre-trade checks, in order, reject with a reason (the order is still
  published, ``status="rejected"``): target weight above
  ``max_position_weight``; more than ``max_trades_per_day`` accepted orders
  in the UTC day; notional above ``max_order_notional``; the day's notional
  above ``max_daily_notional``.
- Fills (``fill_price``): at the first market price of the symbol strictly
  after the order's ``ts_event`` (the next bar's close), moved against the
  order by ``slippage_bps``; the fee is ``max(min_fee, fee_bps * notional)``.
  ``Fill.slippage`` is the slippage cost in cash, ``|fill - market| * qty``.
- Ids: ``order_id = <rebalance_id>:<symbol>``, ``fill_id = <order_id>:fill``,
  so a replayed target produces the same ids (and is skipped once seen).
"""

from __future__ import annotations

import bisect
from typing import Mapping

import msgspec

from schemas.events import Fill, Order, TargetPortfolio

DAY_NS = 86_400 * 1_000_000_000


class BrokerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    initial_cash: float = 1_000_000.0
    min_weight_change: float = 0.01
    slippage_bps: float = 5.0
    fee_bps: float = 1.0
    min_fee: float = 0.0
    max_position_weight: float | None = 0.35
    max_trades_per_day: int | None = 100
    max_order_notional: float | None = None
    max_daily_notional: float | None = None
    price_history: int = 1024  # prices kept per symbol (next-price lookups)


class Account(msgspec.Struct):
    portfolio_id: str
    cash: float
    positions: dict[str, float] = msgspec.field(default_factory=dict)
    fees: float = 0.0
    day: int = -1
    trades_today: int = 0
    notional_today: float = 0.0


class Prices(msgspec.Struct):
    """Per symbol, recent (ts, price) pairs in time order."""

    ts: dict[str, list[int]] = msgspec.field(default_factory=dict)
    px: dict[str, list[float]] = msgspec.field(default_factory=dict)

    def add(self, symbol: str, ts: int, price: float, keep: int) -> None:
        ts_list = self.ts.setdefault(symbol, [])
        px_list = self.px.setdefault(symbol, [])
        i = bisect.bisect_left(ts_list, ts)
        if i < len(ts_list) and ts_list[i] == ts:
            px_list[i] = price
        else:
            ts_list.insert(i, ts)
            px_list.insert(i, price)
        if len(ts_list) > keep:
            del ts_list[: len(ts_list) - keep]
            del px_list[: len(px_list) - keep]

    def at_or_before(self, symbol: str, ts: int) -> float | None:
        ts_list = self.ts.get(symbol, [])
        i = bisect.bisect_right(ts_list, ts)
        return self.px[symbol][i - 1] if i else None

    def after(self, symbol: str, ts: int) -> tuple[int, float] | None:
        ts_list = self.ts.get(symbol, [])
        i = bisect.bisect_right(ts_list, ts)
        return (ts_list[i], self.px[symbol][i]) if i < len(ts_list) else None

    def latest_ts(self, symbol: str) -> int | None:
        ts_list = self.ts.get(symbol)
        return ts_list[-1] if ts_list else None


def account_value(acct: Account, prices: Mapping[str, float]) -> float:
    return acct.cash + sum(q * prices[s] for s, q in acct.positions.items())


def plan_orders(acct: Account, target: TargetPortfolio, prices: Mapping[str, float], cfg: BrokerConfig,
                ts_proc: int) -> list[Order]:
    """Orders that move the account to the target weights; ``prices`` as of the target's time."""
    value = account_value(acct, prices)
    if value <= 0:
        return []
    current = {s: q * prices[s] / value for s, q in acct.positions.items()}
    symbols = sorted(set(target.weights) | set(current))
    deltas = [(s, target.weights.get(s, 0.0) - current.get(s, 0.0)) for s in symbols]
    deltas = [(s, d) for s, d in deltas if abs(d) > cfg.min_weight_change]
    deltas.sort(key=lambda sd: (-abs(sd[1]), sd[0]))
    day = target.ts_event // DAY_NS
    if acct.day != day:
        acct.day, acct.trades_today, acct.notional_today = day, 0, 0.0
    orders = []
    for sym, dw in deltas:
        qty = abs(dw) * value / prices[sym]
        notional = qty * prices[sym]
        tw = target.weights.get(sym, 0.0)
        reason = ""
        if cfg.max_position_weight is not None and abs(tw) > cfg.max_position_weight:
            reason = f"max position size: target weight {tw:.4f} exceeds {cfg.max_position_weight:.4f}"
        elif cfg.max_trades_per_day is not None and acct.trades_today >= cfg.max_trades_per_day:
            reason = f"max trades per day: {cfg.max_trades_per_day} already accepted today"
        elif cfg.max_order_notional is not None and notional > cfg.max_order_notional:
            reason = f"order notional {notional:.2f} exceeds the cap {cfg.max_order_notional:.2f}"
        elif cfg.max_daily_notional is not None and acct.notional_today + notional > cfg.max_daily_notional:
            reason = (f"daily notional {acct.notional_today + notional:.2f} would exceed the cap "
                      f"{cfg.max_daily_notional:.2f}")
        if not reason:
            acct.trades_today += 1
            acct.notional_today += notional
        orders.append(Order(
            order_id=f"{target.rebalance_id}:{sym}", portfolio_id=target.portfolio_id, symbol=sym,
            side="buy" if dw > 0 else "sell", quantity=qty, ts_event=target.ts_event, ts_proc=ts_proc,
            status="rejected" if reason else "accepted", reason=reason, target_weight=tw,
            rebalance_id=target.rebalance_id, ts_ingest=target.ts_ingest))
    return orders


def fill_order(acct: Account, order: Order, market_ts: int, market_price: float, cfg: BrokerConfig,
               ts_proc: int) -> Fill:
    """Fill ``order`` at ``market_price`` (the next price after it) and apply it to the account."""
    sign = 1.0 if order.side == "buy" else -1.0
    price = market_price * (1.0 + sign * cfg.slippage_bps / 1e4)
    notional = order.quantity * price
    fee = max(cfg.min_fee, notional * cfg.fee_bps / 1e4)
    pos = acct.positions.get(order.symbol, 0.0) + sign * order.quantity
    if abs(pos) < 1e-9:
        acct.positions.pop(order.symbol, None)
    else:
        acct.positions[order.symbol] = pos
    acct.cash -= sign * notional + fee
    acct.fees += fee
    return Fill(fill_id=f"{order.order_id}:fill", order_id=order.order_id, portfolio_id=order.portfolio_id,
                symbol=order.symbol, side=order.side, quantity=order.quantity, price=price, fee=fee,
                slippage=abs(price - market_price) * order.quantity, ts_event=market_ts, ts_proc=ts_proc,
                ts_ingest=order.ts_ingest)
