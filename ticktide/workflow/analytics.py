"""What a PM reads next to the return series: realized costs, P&L attribution, rolling risk,
failed rebalances. Pure pandas/numpy over the workflow's collected events and daily ledger.

- Realized costs per rebalance: the fees and slippage (``Fill.slippage``, cash:
  ``|fill - market| * qty``) of the fills of that rebalance's orders, next to
  the optimizer's estimate (``estimated_costs``, a fraction of value, times the
  account value on the rebalance day).
- Attribution: a symbol's P&L is what it is worth at the end plus what its
  sales brought in minus what its purchases cost and its fees (slippage is in
  the fill prices); the symbols' P&L sum to the run's P&L (the rest of the
  account is cash, which earns nothing).
- Rolling statistics over ``window`` (63) daily returns: annualized volatility,
  Sharpe at the stated risk-free rate, and the window's max drawdown.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ROLLING_WINDOW = 63


def _day(ts_ns: int) -> pd.Timestamp:
    return pd.Timestamp(ts_ns, tz="UTC").normalize()


def realized_costs(reports, orders, fills, values: pd.Series) -> dict:
    """Per rebalance and in total: fees, slippage, realized (their sum) and the optimizer's estimate."""
    rebalance_of = {o.order_id: o.rebalance_id for o in orders}
    per: dict[str, dict[str, float]] = {}
    for f in fills:
        c = per.setdefault(rebalance_of.get(f.order_id, ""), {"fees": 0.0, "slippage": 0.0, "fills": 0})
        c["fees"] += float(f.fee)
        c["slippage"] += float(f.slippage)
        c["fills"] += 1
    rows = []
    for r in reports:
        day = _day(r.ts_event)
        value = float(values.asof(day)) if len(values) and day >= values.index[0] else float("nan")
        c = per.get(r.rebalance_id, {"fees": 0.0, "slippage": 0.0, "fills": 0})
        realized = c["fees"] + c["slippage"]
        estimated = r.estimated_costs * value if r.status == "ok" and math.isfinite(value) else 0.0
        rows.append({"date": day.date().isoformat(), "rebalance_id": r.rebalance_id, "status": r.status,
                     "turnover": r.turnover, "fills": c["fills"], "fees": c["fees"], "slippage": c["slippage"],
                     "realized": realized, "realized_pct": realized / value if value else None,
                     "estimated": estimated, "estimated_pct": r.estimated_costs if r.status == "ok" else 0.0})
    fees = float(sum(f.fee for f in fills))
    slippage = float(sum(f.slippage for f in fills))
    return {"fees": fees, "slippage": slippage, "realized": fees + slippage,
            "estimated": float(sum(r["estimated"] for r in rows)), "per_rebalance": rows}


def attribution(fills, close: pd.DataFrame, initial_cash: float) -> dict[str, dict[str, float]]:
    """symbol -> pnl, contribution (pnl / initial cash), fees, slippage; from the fills and the last closes."""
    last = close.ffill().iloc[-1] if len(close) else pd.Series(dtype=float)
    out: dict[str, dict[str, float]] = {}
    qty: dict[str, float] = {}
    for f in fills:
        a = out.setdefault(f.symbol, {"pnl": 0.0, "contribution": 0.0, "fees": 0.0, "slippage": 0.0})
        sign = 1.0 if f.side == "buy" else -1.0
        qty[f.symbol] = qty.get(f.symbol, 0.0) + sign * f.quantity
        a["pnl"] -= sign * f.quantity * f.price + f.fee
        a["fees"] += f.fee
        a["slippage"] += f.slippage
    for s, a in out.items():
        a["pnl"] += qty[s] * float(last.get(s, 0.0)) if abs(qty[s]) > 1e-12 else 0.0
        a["contribution"] = a["pnl"] / initial_cash if initial_cash else 0.0
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["pnl"]))


def rolling_stats(returns: pd.Series, risk_free: float, periods: int = 252,
                  window: int = ROLLING_WINDOW) -> pd.DataFrame:
    """Rolling annualized volatility, Sharpe (at ``risk_free`` a year) and max drawdown of ``window`` returns."""
    r = returns.astype(float)
    excess = r - risk_free / periods
    vol = r.rolling(window).std(ddof=1) * math.sqrt(periods)
    sharpe = excess.rolling(window).mean() / excess.rolling(window).std(ddof=1) * math.sqrt(periods)

    def window_mdd(x: np.ndarray) -> float:
        wealth = np.concatenate(([1.0], np.cumprod(1.0 + x)))
        return float(np.min(wealth / np.maximum.accumulate(wealth) - 1.0))

    mdd = r.rolling(window).apply(window_mdd, raw=True)
    return pd.DataFrame({"volatility": vol, "sharpe": sharpe, "max_drawdown": mdd})


def failed_rebalances(reports) -> list[dict]:
    return [{"date": _day(r.ts_event).date().isoformat(), "trigger": r.trigger, "status": r.status,
             "reason": r.reason} for r in reports if r.status != "ok"]
