"""``ticktide optimize``: one optimization over a price file, as the portfolio consumer runs it.

``--prices`` is a wide close CSV or a long OHLCV CSV/Parquet (``ticktide.workflow.data``);
the window is the last ``lookback + 1`` rows (config ``[portfolio] lookback``)
between ``--start`` and ``--end``, forward-filled, with the symbols that have a
full window: the rows a rebalance on ``--end`` sees in ``ticktide workflow
run`` (whose warm-up defaults to the lookback). The optimization itself is
``consumers.portfolio.solve.optimize_window``, the consumer's code. Prints the
weights, expected return, volatility, Sharpe and each position's share of the
variance (``--format table``, the default, or ``json``); ``--frontier N`` adds
N efficient-frontier points and ``--plot FILE`` draws them with the chosen
portfolio marked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import msgspec
import numpy as np
import pandas as pd

PROG = "ticktide optimize"


def price_window(close: pd.DataFrame, symbols: list[str] | None, start: str | None, end: str | None,
                 rows: int) -> pd.DataFrame:
    """The rows the consumer would optimize over at ``end``."""
    if symbols:
        missing = [s for s in symbols if s not in close.columns]
        if missing:
            raise ValueError(f"no prices for {', '.join(missing)} in the file (check --symbols)")
        close = close[symbols]
    px = close.dropna(how="all")
    if start:
        px = px.loc[pd.Timestamp(start, tz="UTC"):]
    if end:
        px = px.loc[: pd.Timestamp(end, tz="UTC")]
    px = px.tail(rows).ffill().dropna(axis=1, how="any")
    if px.shape[1] == 0 or len(px) < 3:
        raise ValueError(f"{len(px)} rows and {px.shape[1]} symbols with a full window between "
                         f"{start or 'the start'} and {end or 'the end'} (widen --start/--end)")
    return px


def summary(window: pd.DataFrame, cfg, objective: str, target_volatility: float | None) -> dict:
    from consumers.portfolio.risk_models import risk_contributions
    from consumers.portfolio.solve import optimize_window

    out = optimize_window(window, cfg, objective=objective, target_volatility=target_volatility)
    res = out.result
    syms = list(res.weights)
    rc = risk_contributions(np.array([res.weights[s] for s in syms]), out.cov.loc[syms, syms].to_numpy())
    return {
        "objective": res.objective, "risk_model": cfg.risk_model, "risk_free_rate": cfg.risk_free_rate,
        "window": {"start": window.index[0].date().isoformat(), "end": window.index[-1].date().isoformat(),
                   "rows": len(window)},
        "weights": {s: w for s, w in res.weights.items()},
        "expected_return": res.expected_return, "volatility": res.volatility, "sharpe": res.sharpe,
        "risk_contributions": {s: float(v) for s, v in zip(syms, rc)},
        "asset_returns": {s: float(out.mu[s]) for s in syms},
        "asset_volatilities": {s: float(np.sqrt(out.cov.loc[s, s])) for s in syms},
    }


def table(result: dict) -> str:
    w, rc = result["weights"], result["risk_contributions"]
    lines = [f"{result['objective']} ({result['risk_model']} risk model) over {result['window']['rows']} rows "
             f"{result['window']['start']} .. {result['window']['end']}",
             f"expected return {result['expected_return']:.2%}  volatility {result['volatility']:.2%}  Sharpe "
             + (f"{result['sharpe']:.3f}" if result["sharpe"] is not None else "n/a")
             + f" (risk-free rate {result['risk_free_rate']:.2%})", "",
             f"{'symbol':<10} {'weight':>9} {'risk contribution':>18}"]
    for s in sorted(w, key=lambda s: -w[s]):
        if abs(w[s]) >= 1e-6:
            lines.append(f"{s:<10} {w[s]:>9.2%} {rc[s]:>18.2%}")
    for p in result.get("frontier", []):
        if p is result["frontier"][0]:
            lines += ["", f"{'frontier volatility':>20} {'expected return':>16} {'Sharpe':>8}"]
        lines.append(f"{p['volatility']:>20.2%} {p['expected_return']:>16.2%} "
                     + (f"{p['sharpe']:>8.3f}" if p["sharpe"] is not None else f"{'n/a':>8}"))
    return "\n".join(lines)


def plot_frontier(path: str, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    f = result["frontier"]
    ax.plot([p["volatility"] for p in f], [p["expected_return"] for p in f], "-o", ms=3, color="#1f77b4",
            label="efficient frontier")
    vols, rets = result["asset_volatilities"], result["asset_returns"]
    ax.scatter([vols[s] for s in vols], [rets[s] for s in vols], color="#7f7f7f", s=14, label="assets")
    for s in vols:
        ax.annotate(s, (vols[s], rets[s]), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.scatter([result["volatility"]], [result["expected_return"]], marker="*", s=220, color="#d62728",
               zorder=5, label=f"chosen ({result['objective']})")
    ax.set_xlabel("annualized volatility")
    ax.set_ylabel("expected annual return")
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(f"Efficient frontier, {result['window']['start']} .. {result['window']['end']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict:
    from consumers.portfolio.config import PortfolioConfig
    from consumers.portfolio.solve import efficient_frontier
    from ticktide.workflow.data import load_prices

    cfg = PortfolioConfig.load(args.config)
    objective = args.objective or cfg.objective
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    window = price_window(load_prices(args.prices).close, symbols, args.start, args.end, cfg.lookback + 1)
    if len(window) < cfg.min_history + 1:
        raise ValueError(f"{len(window)} rows in the window, the portfolio needs min_history + 1 = "
                         f"{cfg.min_history + 1} (widen --start/--end or lower [portfolio] min_history)")
    result = summary(window, cfg, objective, args.target_volatility)
    points = args.frontier if args.frontier is not None else (20 if args.plot else 0)
    if points:
        result["frontier"] = [dataclasses.asdict(p) for p in efficient_frontier(window, cfg, points)]
    if args.plot:
        plot_frontier(args.plot, result)
    return result


def cmd_optimize(args: argparse.Namespace) -> int:
    from consumers.portfolio.optimizer import InfeasibleError, OptimizationError

    if args.frontier is not None and args.frontier < 2:
        print(f"{PROG}: --frontier needs at least 2 points (e.g. --frontier 20)", file=sys.stderr)
        return 2
    try:
        result = run(args)
    except InfeasibleError as exc:
        print(f"{PROG}: {exc.describe(args.config)}", file=sys.stderr)
        return 1
    except OptimizationError as exc:
        print(f"{PROG}: the solver failed: {exc} (loosen the constraints or shorten the window)", file=sys.stderr)
        return 1
    except (OSError, ValueError, msgspec.MsgspecError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(table(result) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from consumers.portfolio.optimizer import OBJECTIVES
    from streaming.commandline import add_config_option, add_symbols_option, input_file

    p = sub.add_parser(
        "optimize", help="optimize portfolio weights over a price file (the portfolio consumer's optimizer)",
        description="Estimate returns and covariance over the last lookback+1 rows up to --end and solve the "
                    "portfolio consumer's optimization ([portfolio] config: objective, risk model, constraints).")
    # --input (every command's spelling) and --prices (the issue's) are the same option
    p.add_argument("--input", "--prices", dest="prices", required=True, metavar="FILE", type=input_file,
                   help="daily prices: wide close CSV or long OHLCV CSV/Parquet")
    add_symbols_option(p)  # default: every column
    p.add_argument("--start", default=None, metavar="DATE", help="first row considered (YYYY-MM-DD)")
    p.add_argument("--end", default=None, metavar="DATE", help="last row: the rebalance day (YYYY-MM-DD)")
    add_config_option(p, "portfolio config (TOML, flat or [portfolio])")
    p.add_argument("--objective", choices=OBJECTIVES, default=None, help="default: the config's (max_sharpe)")
    p.add_argument("--target-volatility", type=float, default=None, metavar="X",
                   help="annualized volatility cap of max_return (default: the config's, 0.15)")
    p.add_argument("--frontier", type=int, default=None, metavar="N", help="add N efficient-frontier points")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the frontier (20 points unless --frontier)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
    p.set_defaults(func=cmd_optimize)
