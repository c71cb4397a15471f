"""Why a set of constraint groups cannot hold together, in numbers. Pure.

``explain`` turns the group names the optimizer's deletion filter found
(``weight_bounds``, ``max_positions``, ``sector_lower[energy]``, ...) into one
sentence each with the numbers that clash (``10 assets × max_weight 0.05 =
0.50 < 1.0``) and the config key that sets the group, so a user knows what to
change. The key is relative to the portfolio config (``[portfolio.constraints]
max_weight``); the caller adds the file it was read from.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

SECTION = "[portfolio.constraints]"


def _bounds(symbols, c) -> tuple[np.ndarray, np.ndarray]:
    lb = np.array([c.bounds.get(s, (c.min_weight, c.max_weight))[0] for s in symbols], dtype=float)
    ub = np.array([c.bounds.get(s, (c.min_weight, c.max_weight))[1] for s in symbols], dtype=float)
    return lb, ub


def _weight_bounds(symbols, c, **_) -> tuple[str, str]:
    n = len(symbols)
    lb, ub = _bounds(symbols, c)
    overridden = sorted(s for s in symbols if s in c.bounds)
    bad = [s for s, lo, hi in zip(symbols, lb, ub) if lo > hi]
    if bad:
        s = bad[0]
        return (f"bounds for {s}: min {c.bounds[s][0]:g} > max {c.bounds[s][1]:g}", f"{SECTION} bounds.{s}")
    if ub.sum() < 1.0:
        if not overridden:
            return (f"{n} assets × max_weight {c.max_weight:g} = {ub.sum():.2f} < 1.0", f"{SECTION} max_weight")
        return (f"the upper bounds of the {n} assets (max_weight {c.max_weight:g}, bounds for "
                f"{', '.join(overridden)}) sum to {ub.sum():.2f} < 1.0", f"{SECTION} max_weight / bounds")
    if lb.sum() > 1.0:
        if not overridden:
            return (f"{n} assets × min_weight {c.min_weight:g} = {lb.sum():.2f} > 1.0", f"{SECTION} min_weight")
        return (f"the lower bounds of the {n} assets (min_weight {c.min_weight:g}, bounds for "
                f"{', '.join(overridden)}) sum to {lb.sum():.2f} > 1.0", f"{SECTION} min_weight / bounds")
    return (f"weights in [{lb.min():g}, {ub.max():g}] on {n} assets, together with the other groups",
            f"{SECTION} min_weight / max_weight")


def _max_positions(symbols, c, **_) -> tuple[str, str]:
    k = int(c.max_positions)
    _, ub = _bounds(symbols, c)
    top = float(np.sort(ub)[::-1][:k].sum())
    if top < 1.0:
        return (f"max_positions {k} × max_weight {c.max_weight:g} = {top:.2f} < 1.0" if not c.bounds else
                f"the {k} largest upper bounds (max_positions {k}) sum to {top:.2f} < 1.0",
                f"{SECTION} max_positions")
    return (f"max_positions {k} of {len(symbols)} assets, together with the other groups", f"{SECTION} max_positions")


def _min_positions(symbols, c, **_) -> tuple[str, str]:
    m, n = int(c.min_positions), len(symbols)
    if m > n:
        return f"min_positions {m} > {n} assets with a full price window", f"{SECTION} min_positions"
    if m * c.min_position_weight > 1.0:
        return (f"min_positions {m} × min_position_weight {c.min_position_weight:g} = "
                f"{m * c.min_position_weight:.2f} > 1.0", f"{SECTION} min_positions")
    return f"min_positions {m} of {n} assets, together with the other groups", f"{SECTION} min_positions"


def _lowest_volatility(symbols, cov, c, min_vol: Callable | None) -> float | None:
    if min_vol is None:
        return None
    try:
        return min_vol()
    except Exception:  # noqa: BLE001 - only a hint for the message
        return None


def _volatility(name: str, key: str):
    def explain_vol(symbols, c, cov=None, target_volatility=None, min_vol=None, **_) -> tuple[str, str]:
        limit = c.max_volatility if name == "max_volatility" else target_volatility
        low = _lowest_volatility(symbols, cov, c, min_vol)
        if low is not None and low > limit:
            return (f"{name} {limit:.2%} < {low:.2%}, the lowest annualized volatility within the weight bounds",
                    key)
        return f"{name} {limit:.2%}, together with the other groups", key
    return explain_vol


def _sector(kind: str, sector: str):
    def explain_sector(symbols, c, **_) -> tuple[str, str]:
        _, ub = _bounds(symbols, c)
        members = [i for i, s in enumerate(symbols) if c.sectors.get(s) == sector]
        others = [i for i in range(len(symbols)) if i not in members]
        key = f"{SECTION} {kind}.{sector}"
        if kind == "sector_lower":
            limit, room = c.sector_lower[sector], float(ub[members].sum())
            names = ", ".join(symbols[i] for i in members) or "none"
            if room < limit:
                return (f"sector_lower[{sector}] {limit:g} > {room:.2f}, the sum of the upper bounds of its "
                        f"{len(members)} assets ({names})", key)
            return f"sector_lower[{sector}] {limit:g} on {len(members)} assets ({names})", key
        limit, rest = c.sector_upper[sector], float(ub[others].sum())
        if limit + rest < 1.0:
            return (f"sector_upper[{sector}] {limit:g} + {rest:.2f} (the upper bounds of the "
                    f"{len(others)} assets outside it) = {limit + rest:.2f} < 1.0", key)
        return f"sector_upper[{sector}] {limit:g}, together with the other groups", key
    return explain_sector


def _excess(symbols, c, excess=None, risk_free_rate=0.0, max_ret=None, **_) -> tuple[str, str]:
    key = "[portfolio] risk_free_rate / objective"
    if excess is None or not len(excess):
        return "max_sharpe needs an expected return above the risk-free rate", key
    i = int(np.argmax(excess))
    best = f"the best asset, {symbols[i]}, expects {excess[i] + risk_free_rate:.2%}"
    reachable = _lowest_volatility(symbols, None, c, max_ret)
    if reachable is not None and reachable < excess[i] + risk_free_rate - 1e-9:
        best = f"the highest expected return within the weight bounds is {reachable:.2%} ({best})"
    return f"max_sharpe needs an expected return above the risk-free rate {risk_free_rate:.2%}; {best}", key


def _max_drawdown(symbols, c, min_mdd=None, **_) -> tuple[str, str]:
    low = _lowest_volatility(symbols, None, c, min_mdd)
    key = f"{SECTION} max_drawdown"
    if low is not None and low > c.max_drawdown:
        return (f"max_drawdown {c.max_drawdown:.2%} < {low:.2%}, the smallest in-sample (cumulative) "
                "drawdown within the weight bounds", key)
    return f"max_drawdown {c.max_drawdown:.2%} on the in-sample cumulative returns, with the other groups", key


def explain(names: list[str], symbols: list[str], c, **context) -> dict[str, tuple[str, str]]:
    """group name -> (what clashes, with numbers; the config key that sets it)."""
    out: dict[str, tuple[str, str]] = {}
    for name in names:
        if name == "weight_bounds":
            fn = _weight_bounds
        elif name == "max_positions":
            fn = _max_positions
        elif name == "min_positions":
            fn = _min_positions
        elif name == "max_volatility":
            fn = _volatility("max_volatility", f"{SECTION} max_volatility")
        elif name == "target_volatility":
            fn = _volatility("target_volatility", "[portfolio] target_volatility")
        elif name.startswith(("sector_lower[", "sector_upper[")):
            kind, sector = name[:-1].split("[", 1)
            fn = _sector(kind, sector)
        elif name == "positive_excess_return":
            fn = _excess
        elif name == "max_drawdown":
            fn = _max_drawdown
        else:
            out[name] = (name, "[portfolio]")
            continue
        out[name] = fn(symbols, c, **context)
    return out
