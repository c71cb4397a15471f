"""Paper broker: orders from target weights, pre-trade checks, fills with slippage and fees. Pure.

- Planning (``plan_orders``): the account is valued at the latest prices at or
  before the target's ``ts_event``; every symbol whose weight would change by
  more than ``min_weight_change`` (1 %) gets an order for
  ``|dw| * value / price`` units, sells first, then buys, each side largest
  ``|dw|`` first.
- Cash never goes below ``cash_floor`` (default 0) unless ``allow_margin``:
  the buys are scaled down together when cash plus the sells' proceeds (at
  the sizing prices, slippage and fees included) cannot pay for them, and
  again at fill time (``fill_batch``: sells first, then the buys) when the
  fill price gapped past the sizing price. A scaled order or fill says why
  in its ``reason`` (a scaled fill also carries ``requested_quantity``);
  nothing is silently financed.
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
    cash_floor: float = 0.0  # buys are scaled so cash stays at or above this
    allow_margin: bool = False  # true: no cash check (cash may go below the floor)
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
    deltas.sort(key=lambda sd: (sd[1] > 0, -abs(sd[1]), sd[0]))  # sells first
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
    if not cfg.allow_margin:
        _fit_buys_to_cash(acct, orders, prices, cfg)
    return orders


def _side_sign(side: str) -> float:
    return 1.0 if side == "buy" else -1.0


def _fee(notional: float, cfg: BrokerConfig) -> float:
    return max(cfg.min_fee, notional * cfg.fee_bps / 1e4) if notional > 0 else 0.0


def _cash_flow(side: str, quantity: float, market_price: float, cfg: BrokerConfig) -> float:
    """Cash change of a fill at ``market_price`` (slippage and fee included)."""
    sign = _side_sign(side)
    notional = quantity * market_price * (1.0 + sign * cfg.slippage_bps / 1e4)
    return -sign * notional - _fee(notional, cfg)


def scale_to_budget(costs, budget: float) -> float:
    """The largest f in [0, 1] with ``sum(cost(f)) <= budget`` (costs increase with f); bisection.

    ``costs`` are functions of the scale factor. The budget keeps a margin of 1e-9 of
    itself so a re-summed ledger (another order of additions) cannot land below it.
    """
    budget -= 1e-9 * max(1.0, abs(budget))
    total = lambda f: sum(c(f) for c in costs)  # noqa: E731
    if total(1.0) <= budget:
        return 1.0
    if budget <= 0 or total(0.0) > budget:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if total(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _buy_cost(quantity: float, market_price: float, cfg: BrokerConfig):
    return lambda f: -_cash_flow("buy", quantity * f, market_price, cfg)


def _fit_buys_to_cash(acct: Account, orders: list[Order], prices: Mapping[str, float],
                      cfg: BrokerConfig) -> None:
    """Scale the accepted buys so cash + sells' proceeds - buys stays >= the floor (sizing prices)."""
    ok = [o for o in orders if o.status == "accepted"]
    proceeds = sum(_cash_flow(o.side, o.quantity, prices[o.symbol], cfg) for o in ok if o.side == "sell")
    buys = [o for o in ok if o.side == "buy"]
    budget = acct.cash + proceeds - cfg.cash_floor
    f = scale_to_budget([_buy_cost(o.quantity, prices[o.symbol], cfg) for o in buys], budget)
    if f >= 1.0:
        return
    need = sum(-_cash_flow("buy", o.quantity, prices[o.symbol], cfg) for o in buys)
    why = f"(cash {acct.cash:,.2f} + sells {proceeds:,.2f} cannot pay {need:,.2f} of buys with slippage and fees)"
    for o in buys:
        if f <= 0.0:  # nothing left above the floor: the buy is not sent
            o.status = "rejected"
            o.reason = f"cash floor {cfg.cash_floor:,.2f}: no cash left for buys {why}"
            continue
        o.reason = (f"cash floor {cfg.cash_floor:,.2f}: buys scaled to {f:.4%} of the target quantity "
                    f"{o.quantity:.6g} {why}")
        o.quantity *= f


def fill_batch(acct: Account, fills: list[tuple[int, float, float | None, Order]], cfg: BrokerConfig,
               ts_proc: int) -> list[Fill]:
    """Fill one account's orders of one time: sells first, then the buys, scaled together when
    the cash (above the floor) cannot pay for them at these prices.

    ``fills``: (market ts, market price, the price the order was sized at or None, order).
    """
    sells = [x for x in fills if x[3].side == "sell"]
    buys = [x for x in fills if x[3].side == "buy"]
    out = [fill_order(acct, o, ts, px, cfg, ts_proc) for ts, px, _sized, o in sells]
    f = 1.0
    if buys and not cfg.allow_margin:
        f = scale_to_budget([_buy_cost(o.quantity, px, cfg) for _ts, px, _s, o in buys],
                            acct.cash - cfg.cash_floor)
    for ts, px, sized, o in buys:
        if f >= 1.0:
            out.append(fill_order(acct, o, ts, px, cfg, ts_proc))
            continue
        gap = f"the fill price {px:.6g} is {px / sized - 1:+.2%} from the sizing price {sized:.6g}; " \
            if sized else ""
        reason = (f"cash floor {cfg.cash_floor:,.2f}: {gap}buy scaled from {o.quantity:.6g} to "
                  f"{o.quantity * f:.6g} units ({f:.4%}) with cash {acct.cash:,.2f} for the buys")
        out.append(fill_order(acct, o, ts, px, cfg, ts_proc, quantity=o.quantity * f, reason=reason))
    return out


def fill_order(acct: Account, order: Order, market_ts: int, market_price: float, cfg: BrokerConfig,
               ts_proc: int, quantity: float | None = None, reason: str = "") -> Fill:
    """Fill ``order`` at ``market_price`` (the next price after it) and apply it to the account.

    ``quantity`` below the order's (a scaled fill) is recorded with its ``reason``.
    """
    sign = _side_sign(order.side)
    qty = order.quantity if quantity is None else quantity
    price = market_price * (1.0 + sign * cfg.slippage_bps / 1e4)
    notional = qty * price
    fee = _fee(notional, cfg)
    pos = acct.positions.get(order.symbol, 0.0) + sign * qty
    if abs(pos) < 1e-9:
        acct.positions.pop(order.symbol, None)
    else:
        acct.positions[order.symbol] = pos
    acct.cash -= sign * notional + fee
    acct.fees += fee
    return Fill(fill_id=f"{order.order_id}:fill", order_id=order.order_id, portfolio_id=order.portfolio_id,
                symbol=order.symbol, side=order.side, quantity=qty, price=price, fee=fee,
                slippage=abs(price - market_price) * qty, ts_event=market_ts, ts_proc=ts_proc,
                ts_ingest=order.ts_ingest, reason=reason,
                requested_quantity=order.quantity if quantity is not None else None)
