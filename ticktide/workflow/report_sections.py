"""Report sections that make the workflow report honest: headline, costs, attribution, benchmark,
failed rebalances, and the charts that need more than one line (equity with benchmark and
rebalance markers, rolling statistics, a weights chart readable for 20+ symbols)."""

from __future__ import annotations

import pandas as pd

TOP_WEIGHTS = 12  # the weights chart shows the largest positions and "other"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def headline(results: dict) -> list[str]:
    m, n = results["risk_metrics"], len(results["rebalances"])
    ok, failed = results.get("rebalances_ok", n), results.get("failed_rebalances", [])
    bench = results.get("benchmark")
    vs = (f" vs {bench['symbol']} {_pct(bench['total_return'])}" if bench else "")
    lines = [f"**Total return {_pct(results['total_return'])}{vs}, annualized {_pct(m.get('annual_return'))}, "
             f"Sharpe {_num(m['sharpe'])} at a risk-free rate of {_pct(results.get('risk_free_rate'))}; "
             f"{ok} of {n} rebalances succeeded.**", ""]
    if failed:
        reasons = sorted({f["reason"] for f in failed})
        lines += [f"> **{len(failed)} of {n} rebalances failed** (previous targets stayed in force): "
                  + " | ".join(reasons[:3]) + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""), ""]
        if ok == 0:
            lines += ["> **No rebalance succeeded: the account stayed in cash, so the risk metrics below describe "
                      "cash, not a portfolio.**", ""]
    return lines


def performance_rows(results: dict) -> list[str]:
    m = results["risk_metrics"]
    rows = [f"| annualized return | {_pct(m.get('annual_return'))} |",
            f"| Calmar (annualized return / max drawdown) | {_num(m.get('calmar'))} |",
            f"| risk-free rate (Sharpe, Sortino) | {_pct(results.get('risk_free_rate'))} |"]
    bench = results.get("benchmark")
    if bench:
        s = bench["symbol"]
        rows += [f"| benchmark | {s}: total {_pct(bench['total_return'])}, annualized "
                 f"{_pct(bench.get('annual_return'))}, volatility {_pct(bench.get('volatility'))} |",
                 f"| beta to {s} | {_num(m.get('beta'))} |",
                 f"| alpha (annualized) | {_pct(m.get('alpha'))} |",
                 f"| tracking error (annualized) | {_pct(m.get('tracking_error'))} |",
                 f"| information ratio | {_num(m.get('information_ratio'))} |"]
    return rows


def stress_section(results: dict) -> list[str]:
    lines = ["## Stress tests", ""]
    if not results.get("benchmark"):
        lines += ["No benchmark configured: `market_crash` applies the shock uniformly to every position (no betas). "
                  "Set `--benchmark SYMBOL` or `[risk] benchmark` for a beta-scaled crash.", ""]
    lines += ["| scenario | portfolio loss | worst position | method |", "| --- | --- | --- | --- |"]
    for s in results["stress_results"]:
        worst = f"{s['worst_position']} ({_pct(s['worst_position_loss'])})" if s.get("worst_position") else "n/a"
        lines.append(f"| {s['scenario']} | {_pct(s['portfolio_loss'])} | {worst} | {s.get('method', '')} |")
    return lines + [""]


def costs_section(results: dict) -> list[str]:
    c = results.get("costs")
    if not c:
        return []
    lines = ["## Costs: realized vs the optimizer's estimate", "",
             "Realized = fees + slippage of the rebalance's fills; the estimate is the optimizer's turnover "
             "penalty (transaction_cost × turnover) on the account value that day.", "",
             "| date | status | turnover | fills | fees | slippage | realized | realized % | estimated | est. % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in c["per_rebalance"]:
        lines.append(f"| {r['date']} | {r['status']} | {_pct(r['turnover'])} | {r['fills']} | {r['fees']:,.2f} | "
                     f"{r['slippage']:,.2f} | {r['realized']:,.2f} | {_pct(r['realized_pct'])} | "
                     f"{r['estimated']:,.2f} | {_pct(r['estimated_pct'])} |")
    lines.append(f"| **total** | | | {sum(r['fills'] for r in c['per_rebalance'])} | {c['fees']:,.2f} | "
                 f"{c['slippage']:,.2f} | {c['realized']:,.2f} | {_pct(c['realized'] / results['initial_cash'])} | "
                 f"{c['estimated']:,.2f} | |")
    return lines + [""]


def attribution_section(results: dict) -> list[str]:
    a = results.get("attribution") or {}
    if not a:
        return []
    total = sum(v["pnl"] for v in a.values())
    lines = ["## P&L attribution", "",
             f"Per symbol: final value + sales - purchases - fees (slippage is in the fill prices); "
             f"they sum to the run's P&L, {total:,.2f}.", "",
             "| symbol | P&L | contribution to return | fees | slippage |", "| --- | --- | --- | --- | --- |"]
    for s, v in a.items():
        lines.append(f"| {s} | {v['pnl']:,.2f} | {_pct(v['contribution'])} | {v['fees']:,.2f} | {v['slippage']:,.2f} |")
    return lines + [""]


def failed_section(results: dict) -> list[str]:
    failed = results.get("failed_rebalances") or []
    if not failed:
        return []
    lines = ["## Failed rebalances", "", "| date | trigger | status | reason |", "| --- | --- | --- | --- |"]
    lines += [f"| {f['date']} | {f['trigger']} | {f['status']} | {f['reason']} |" for f in failed]
    return lines + [""]


# -- charts -----------------------------------------------------------------------------
def _naive(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_localize(None) if index.tz is not None else index


def equity_chart(plt, results: dict, series: dict):
    values: pd.Series = series["values"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(_naive(values.index), values.to_numpy(), color="#1f77b4", label="portfolio")
    bench = series.get("benchmark")
    if bench is not None:
        ax.plot(_naive(bench.index), bench.to_numpy(), color="#7f7f7f", lw=1.0,
                label=f"{results['benchmark']['symbol']} (same start value)")
    days = {"ok": [], "failed": []}
    for r in results["rebalances"]:
        days["ok" if r["status"] == "ok" else "failed"].append(pd.Timestamp(r["date"], tz="UTC"))
    for kind, colour, marker in (("ok", "#2ca02c", "^"), ("failed", "#d62728", "x")):
        when = [d for d in days[kind] if values.index[0] <= d <= values.index[-1]]
        if when:
            ax.scatter(_naive(pd.DatetimeIndex(when)), values.asof(pd.DatetimeIndex(when)).to_numpy(), color=colour,
                       marker=marker, s=30, zorder=5,
                       label="rebalance" if kind == "ok" else "failed rebalance")
    ax.set_title("Equity curve")
    ax.set_ylabel("portfolio value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def rolling_chart(plt, matplotlib, results: dict, series: dict):
    roll: pd.DataFrame = series["rolling"]
    idx = _naive(roll.index)
    window = results.get("rolling_window", 63)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    axes[0].plot(idx, roll["volatility"].to_numpy(), color="#9467bd")
    axes[0].set_title(f"Rolling {window}-day annualized volatility")
    axes[1].plot(idx, roll["sharpe"].to_numpy(), color="#1f77b4")
    axes[1].axhline(0.0, color="black", lw=0.6)
    axes[1].set_title(f"Rolling {window}-day Sharpe (risk-free rate {_pct(results.get('risk_free_rate'))})")
    axes[2].fill_between(idx, roll["max_drawdown"].to_numpy(), 0.0, color="#d62728", alpha=0.5)
    axes[2].set_title(f"Rolling {window}-day max drawdown")
    for ax in (axes[0], axes[2]):
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def weights_chart(plt, matplotlib, series: dict):
    weights: pd.DataFrame = series["weights"].clip(lower=0)
    cols = [c for c in weights.columns if weights[c].max() > 1e-6]
    ranked = sorted(cols, key=lambda c: -float(weights[c].mean()))
    top, rest = ranked[:TOP_WEIGHTS], ranked[TOP_WEIGHTS:]
    layers = [weights[c].to_numpy() for c in top]
    labels = list(top)
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))  # the 10 strong hues first, then their light twins
    colours = [matplotlib.colormaps["tab20"](order[i % 20]) for i in range(len(top))]
    if rest:
        layers.append(weights[rest].sum(axis=1).to_numpy())
        labels.append(f"other ({len(rest)})")
        colours.append("#c7c7c7")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.stackplot(_naive(weights.index), *layers, labels=labels, colors=colours)
    ax.set_title("Weights over time" + (f" (top {TOP_WEIGHTS} by average weight)" if rest else ""))
    ax.set_ylim(0, max(1.0, float(weights.sum(axis=1).max())))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    return fig
