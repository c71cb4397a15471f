"""Paper broker: order planning, pre-trade checks, next-price fills, restart and replay."""

from __future__ import annotations

import asyncio

import pytest

from consumers.execution.broker import Account, BrokerConfig, plan_orders
from consumers.execution.processor import ExecutionConfig, ExecutionProcessor
from schemas.events import Bar, Fill, Order, TargetPortfolio
from streaming.bus.memory import MemoryBus
from streaming.codec import encode, key_for
from streaming.processor import Envelope
from streaming.runner import Runner, RunnerSettings

DAY = 86_400 * 10**9
T0 = 1_700_000_000 * 10**9 // DAY * DAY + 21 * 3600 * 10**9


def bar(sym, day, px):
    return Envelope("bars.v1", 0, day, sym.encode(), Bar(symbol=sym, ts_event=T0 + day * DAY, open=px, high=px,
                                                         low=px, close=px))


def target(day, weights, rid=None):
    return Envelope("targets.v1", 0, day, b"p", TargetPortfolio(
        portfolio_id="p", rebalance_id=rid or f"p:{day}", ts_event=T0 + day * DAY, ts_proc=0, weights=weights))


def cfg(**kw):
    kw.setdefault("max_position_weight", 0.6)
    return ExecutionConfig(inputs=["targets.v1", "bars.v1"], slippage_bps=10.0, fee_bps=2.0, **kw)


def outputs(proc, envs):
    res = proc.process(envs)
    assert not res.rejected
    return [o.event for o in res.outputs]


def test_plan_orders_threshold_order_and_checks():
    acct = Account("p", 90_000.0, {"A": 100.0})  # A worth 10 000 at 100 = 10 % of 100 000
    t = TargetPortfolio(portfolio_id="p", rebalance_id="r1", ts_event=T0, ts_proc=0,
                        weights={"A": 0.105, "B": 0.5, "C": 0.2, "D": 0.45})
    orders = plan_orders(acct, t, {"A": 100.0, "B": 50.0, "C": 20.0, "D": 10.0},
                         BrokerConfig(max_position_weight=0.48, max_trades_per_day=1), ts_proc=0)
    assert [o.symbol for o in orders] == ["B", "D", "C"]  # A moves only 0.5 %; largest change first
    assert orders[0].status == "rejected" and "max position size" in orders[0].reason
    assert orders[1].status == "accepted" and orders[1].quantity == pytest.approx(0.45 * 100_000 / 10)
    assert orders[1].order_id == "r1:D" and orders[1].side == "buy"
    assert orders[2].status == "rejected" and "max trades per day" in orders[2].reason
    capped = plan_orders(Account("p", 100_000.0), t, {"A": 100.0, "B": 50.0, "C": 20.0, "D": 10.0},
                         BrokerConfig(max_position_weight=None, max_order_notional=30_000.0), ts_proc=0)
    assert {o.symbol: o.status for o in capped} == {"B": "rejected", "D": "rejected", "C": "accepted",
                                                   "A": "accepted"}
    assert "notional" in capped[0].reason


def test_fills_at_next_price_with_slippage_and_fees():
    proc = ExecutionProcessor(cfg(), clock=lambda: 0)
    evs = outputs(proc, [bar("A", 0, 100.0), bar("B", 0, 50.0), target(0, {"A": 0.5, "B": 0.25})])
    orders = [e for e in evs if isinstance(e, Order)]
    assert [o.symbol for o in orders] == ["A", "B"] and not [e for e in evs if isinstance(e, Fill)]
    # A's fill waits until B's next price is known too: fills apply in one canonical order
    assert outputs(proc, [bar("A", 1, 110.0)]) == []
    fill, fill_b = outputs(proc, [bar("B", 1, 40.0)])
    assert fill.order_id == "p:0:A" and fill.fill_id == "p:0:A:fill" and fill.ts_event == T0 + DAY
    assert fill.price == pytest.approx(110.0 * 1.001)
    assert fill.quantity == pytest.approx(5000.0)  # 50 % of 1e6 at the target's price 100
    assert fill.fee == pytest.approx(fill.quantity * fill.price * 2e-4)
    acct = proc.state.accounts["p"]
    assert acct.positions == {"A": pytest.approx(5000.0), "B": pytest.approx(5000.0)}
    assert acct.cash == pytest.approx(1e6 - 5000 * 110.11 - 5000 * 40.04 - fill.fee - fill_b.fee)
    assert fill_b.symbol == "B" and fill_b.price == pytest.approx(40.0 * 1.001)


def test_target_waits_for_prices_and_replay_is_deduplicated():
    proc = ExecutionProcessor(cfg(), clock=lambda: 0)
    evs = outputs(proc, [target(0, {"A": 0.5}), bar("A", 0, 100.0), bar("A", 1, 101.0)])
    assert [type(e).__name__ for e in evs] == ["Order", "Fill"]
    assert outputs(proc, [target(0, {"A": 0.5})]) == []  # replayed target: no duplicate orders
    sell = outputs(proc, [target(1, {"A": 0.1}), bar("A", 2, 99.0)])
    assert sell[0].side == "sell" and sell[1].price == pytest.approx(99.0 * 0.999)


async def test_restart_resumes_positions_and_cash_from_the_changelog():
    bus = MemoryBus("memory://exec-test")
    for e in [bar("A", 0, 100.0), bar("A", 1, 100.0)]:
        await bus.publish("bars.v1", key_for("bars.v1", e.event), encode(e.event))
    await bus.publish("targets.v1", b"p", encode(target(0, {"A": 0.5}).event))

    async def run_once():
        proc = ExecutionProcessor(cfg(), clock=lambda: 0)
        await Runner(proc, bus, RunnerSettings(duration_s=0.3, poll_timeout_ms=20)).run()
        return proc

    first = await run_once()
    assert first.state.accounts["p"].positions == {"A": pytest.approx(5000.0)}
    await bus.publish("bars.v1", b"A", encode(bar("A", 2, 120.0).event))
    await bus.publish("targets.v1", b"p", encode(target(2, {"A": 0.0}).event))
    await bus.publish("bars.v1", b"A", encode(bar("A", 3, 120.0).event))
    second = await run_once()
    acct = second.state.accounts["p"]
    assert acct.positions == {}
    orders = [r for r in await bus.read_all("orders.v1")]
    assert len(orders) == 2  # one buy, one sell: nothing re-ordered after the restart
    fills = await bus.read_all("fills.v1")
    assert len(fills) == 2


# -- the cash floor ---------------------------------------------------------------

def test_buys_are_sized_within_cash_and_sells_come_first():
    acct = Account("p", 10_000.0, {"A": 900.0})  # A worth 90 000 at 100
    t = TargetPortfolio(portfolio_id="p", rebalance_id="r", ts_event=T0, ts_proc=0,
                        weights={"A": 0.3, "B": 0.35, "C": 0.35})
    prices = {"A": 100.0, "B": 50.0, "C": 20.0}
    c = BrokerConfig(max_position_weight=None, slippage_bps=10.0, fee_bps=2.0)
    orders = plan_orders(acct, t, prices, c, ts_proc=0)
    assert [(o.symbol, o.side) for o in orders] == [("A", "sell"), ("B", "buy"), ("C", "buy")]
    # cash + the sell's proceeds at the sizing prices pay for the buys, slippage and fees included
    cash = acct.cash
    for o in orders:
        sign = 1.0 if o.side == "buy" else -1.0
        notional = o.quantity * prices[o.symbol] * (1 + sign * c.slippage_bps / 1e4)
        cash -= sign * notional + notional * c.fee_bps / 1e4
    assert 0.0 <= cash < 1.0
    assert all("cash floor" in o.reason and "scaled to" in o.reason for o in orders[1:])
    assert orders[0].reason == ""
    # with margin allowed the buys are the full weight change
    margin = plan_orders(Account("p", 10_000.0, {"A": 900.0}), t, prices,
                         BrokerConfig(max_position_weight=None, allow_margin=True), ts_proc=0)
    assert margin[1].quantity == pytest.approx(0.35 * 100_000 / 50) and margin[1].reason == ""


def _gap_run(**kw):
    """Fully invest 1e6 in A and B at 100, fill at a +10 % gap; the account's fills and cash."""
    proc = ExecutionProcessor(cfg(**kw), clock=lambda: 0)
    outputs(proc, [bar("A", 0, 100.0), bar("B", 0, 100.0), target(0, {"A": 0.5, "B": 0.5})])
    fills = outputs(proc, [bar("A", 1, 110.0), bar("B", 1, 110.0)])
    return fills, proc.state.accounts["p"]


def test_a_fill_price_gap_scales_the_buys_down_with_a_reason():
    fills, acct = _gap_run()
    assert len(fills) == 2 and all(isinstance(f, Fill) for f in fills)
    assert 0.0 <= acct.cash < 1.0  # everything left is invested, nothing borrowed
    for f in fills:
        assert f.requested_quantity is not None and f.quantity < f.requested_quantity
        assert f.quantity / f.requested_quantity == pytest.approx(fills[0].quantity / fills[0].requested_quantity)
        assert "+10.00% from the sizing price 100" in f.reason and "scaled from" in f.reason
    # what the old broker did: the full quantity, financed by negative cash
    margin_fills, margin_acct = _gap_run(allow_margin=True)
    assert margin_acct.cash < -90_000 and all(f.reason == "" and f.requested_quantity is None
                                              for f in margin_fills)
    floor_fills, floor_acct = _gap_run(cash_floor=50_000.0)
    assert 50_000.0 <= floor_acct.cash < 50_001.0


def test_fills_of_one_time_apply_sells_before_buys():
    proc = ExecutionProcessor(cfg(max_position_weight=None), clock=lambda: 0)
    outputs(proc, [bar("A", 0, 100.0), bar("Z", 0, 100.0), target(0, {"Z": 0.98})])
    outputs(proc, [bar("A", 1, 100.0), bar("Z", 1, 100.0)])
    # rotate Z into A: A's buy sorts first by id, but the sell of Z pays for it
    outputs(proc, [target(1, {"A": 0.98})])
    fills = outputs(proc, [bar("A", 2, 100.0), bar("Z", 2, 100.0)])
    assert [(f.symbol, f.side) for f in fills] == [("Z", "sell"), ("A", "buy")]
    assert proc.state.accounts["p"].cash >= 0.0


def test_no_cash_above_the_floor_rejects_the_buys_with_the_reason():
    acct = Account("p", 1_000.0)
    t = TargetPortfolio(portfolio_id="p", rebalance_id="r", ts_event=T0, ts_proc=0, weights={"A": 0.3})
    [order] = plan_orders(acct, t, {"A": 100.0}, BrokerConfig(cash_floor=5_000.0), ts_proc=0)
    assert order.status == "rejected" and "no cash left for buys" in order.reason
