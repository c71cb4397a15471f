"""What the max_drawdown constraint costs a rebalance (issue 16).

One rebalance = ``consumers.portfolio.solve.optimize_window`` on 252 + 1 real daily
closes (tests/data/stock_prices_20.csv, every symbol with a full window). Baseline:
the same solve without ``max_drawdown``, measured in the same run, interleaved.
Prints the median seconds per solve and the ratio to the baseline for each objective,
and the time of a 20-point efficient frontier.

    PYTHONPATH=. .venv/bin/python bench/bench_optimizer.py [--repeat 5] [--end 2009-12-31] [--tighten 0.85]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd

from consumers.portfolio.config import PortfolioConfig
from consumers.portfolio.risk_models import returns_from_prices
from consumers.portfolio.solve import efficient_frontier, optimize_window

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "stock_prices_20.csv"


def _time(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def cumulative_mdd(px: pd.DataFrame, weights: dict[str, float]) -> float:
    path = np.concatenate(([0.0], np.cumsum(returns_from_prices(px)[list(weights)].to_numpy()
                                            @ np.array(list(weights.values())))))
    return float(np.max(np.maximum.accumulate(path) - path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--end", default="2009-12-31")
    ap.add_argument("--tighten", type=float, default=0.85,
                    help="max_drawdown = this x the unconstrained solution's in-sample drawdown (so it binds)")
    args = ap.parse_args()
    px = pd.read_csv(DATA, index_col=0, parse_dates=True).loc[: args.end].tail(253).dropna(axis=1)
    base = PortfolioConfig(target_volatility=0.40)
    print(f"{px.shape[1]} symbols x {len(px)} rows ending {px.index[-1].date()}, max_weight "
          f"{base.constraints.max_weight}, max_drawdown {args.tighten} x the unconstrained one, "
          f"median of {args.repeat}")
    for objective in ("max_sharpe", "min_variance", "max_return"):
        free = cumulative_mdd(px, optimize_window(px, base, objective=objective).result.weights)
        cons = msgspec.structs.replace(base, constraints=msgspec.structs.replace(
            base.constraints, max_drawdown=round(args.tighten * free, 4)))
        plain = with_mdd = 0.0
        for _ in range(2):  # interleaved, so drift in the machine's load hits both
            plain = _time(lambda: optimize_window(px, base, objective=objective), args.repeat)
            with_mdd = _time(lambda: optimize_window(px, cons, objective=objective), args.repeat)
        bound = cumulative_mdd(px, optimize_window(px, cons, objective=objective).result.weights)
        print(f"{objective:13s} baseline {plain * 1e3:7.1f} ms   with max_drawdown {with_mdd * 1e3:7.1f} ms   "
              f"ratio {with_mdd / plain:5.2f}x   in-sample MDD {free:.3f} -> {bound:.3f}")
    t = _time(lambda: efficient_frontier(px, base, 20), 1)
    print(f"efficient frontier, 20 points: {t:.2f} s")


if __name__ == "__main__":
    main()
