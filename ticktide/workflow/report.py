"""The human-readable workflow report: ``report.md`` with PNG charts (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ticktide.workflow import report_sections as sections


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def charts(dest: Path, results: dict, series: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values: pd.Series = series["values"]
    weights: pd.DataFrame = series["weights"]
    made: list[tuple[str, str]] = []

    def save(fig, filename: str, label: str, dates: bool = True) -> None:
        if dates:
            fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(dest / filename, dpi=100)
        plt.close(fig)
        made.append((label, filename))

    idx = values.index.tz_localize(None) if values.index.tz is not None else values.index

    save(sections.equity_chart(plt, results, series), "equity.png", "Equity curve")

    wealth = values / values.iloc[0]
    dd = wealth / wealth.cummax() - 1.0
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.fill_between(idx, dd.to_numpy(), 0.0, color="#d62728", alpha=0.5)
    ax.set_title("Drawdown")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    save(fig, "drawdown.png", "Drawdown")

    if series.get("rolling") is not None and len(series["rolling"]):
        save(sections.rolling_chart(plt, matplotlib, results, series), "rolling.png",
             "Rolling volatility, Sharpe and drawdown")

    if not weights.empty:
        save(sections.weights_chart(plt, matplotlib, series), "weights.png", "Weights over time")

    rc = results.get("risk_contributions") or {}
    if rc:
        names = sorted(rc, key=lambda s: -rc[s])
        fig, ax = plt.subplots(figsize=(9, 3.5))
        ax.bar(names, [rc[s] for s in names], color="#2ca02c", label="risk contribution")
        ax.bar(names, [results["optimal_weights"].get(s, 0.0) for s in names], fill=False,
               edgecolor="black", label="weight")
        ax.set_title("Risk contributions of the final target weights")
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.legend()
        save(fig, "risk_contributions.png", "Risk contributions", dates=False)
    return made


SUMMARY_LABELS = (("symbols_processed", "symbols processed"), ("symbols_preprocessed", "symbols preprocessed"),
                  ("symbols_with_features", "symbols with features"), ("portfolio_optimized", "portfolio optimized"),
                  ("risk_assessed", "risk assessed"), ("trades_executed", "trades executed"))


def summary_block(s: dict) -> list[str]:
    """The results' ``summary`` as a table (the report opens with it)."""
    def show(v) -> str:
        return ("yes" if v else "no") if isinstance(v, bool) else str(v)

    return ["## Summary", "", "| step | result |", "| --- | --- |",
            *(f"| {label} (`{key}`) | {show(s[key])} |" for key, label in SUMMARY_LABELS)]


def cash_lines(results: dict) -> list[str]:
    """The lowest end-of-day cash and the orders the cash floor scaled down."""
    cash = results.get("daily_cash") or []
    if not cash:
        return []
    low = min(cash, key=lambda c: c["cash"])
    scaled = [t for t in results["trades"] if t.get("reason")]
    return [f"Lowest end-of-day cash: {low['cash']:,.2f} on {low['date']}; "
            f"{len(results.get('scaled_orders') or [])} orders sized down and {len(scaled)} fills scaled "
            "down to keep cash above the floor (their reasons are in results.json).", ""]


def alert_lines(results: dict) -> list[str]:
    """Alerts grouped by type (and limit) with their first and last date."""
    summary = results.get("alert_summary") or []
    if not summary:
        return ["## Alerts", "", "No alerts.", ""]
    lines = ["## Alerts", "", "| type | limit | count | first | last |", "| --- | --- | --- | --- | --- |"]
    for g in summary:
        lines.append(f"| {g['type']} | {g['limit'] or ''} | {g['count']} | {g['first']} | {g['last']} |")
    still = [f"{b['limit']}{' ' + b['symbol'] if b['symbol'] else ''} (since {b['date']})"
             for b in results.get("open_limit_breaches") or []]
    if still:
        lines += ["", f"Limit breaches still open at the end: {', '.join(still)}."]
    return lines + [""]


def write_report(dest: Path, results: dict, series: dict) -> Path:
    made = charts(dest, results, series)
    m = results["risk_metrics"]
    lines = ["# ticktide workflow report", "", *summary_block(results["summary"]), "",
        f"Symbols: {', '.join(results['symbols'])}  ",
        f"Window: {results['start']} to {results['end']} (first trading day {results['first_trading_day']}, "
        f"{results['days']} days)  ",
        f"Objective: {results['objective']}, risk model: {results['risk_model']}", "",
        *sections.headline(results),
        "## Performance and risk", "",
        "| metric | value |", "| --- | --- |",
        f"| initial cash | {results['initial_cash']:,.2f} |",
        f"| final value | {results['final_value']:,.2f} |",
        f"| total return | {_pct(results['total_return'])} |",
        f"| annualized volatility | {_pct(m['volatility'])} |",
        f"| Sharpe (risk-free rate {_pct(results.get('risk_free_rate'))}) | {_num(m['sharpe'])} |",
        f"| Sortino (risk-free rate {_pct(results.get('risk_free_rate'))}) | {_num(m['sortino'])} |",
        *sections.performance_rows(results),
        f"| max drawdown | {_pct(m['max_drawdown'])} |",
        f"| VaR 95 % (historical = `var_95` / parametric) | {_pct(m['var_95_historical'])} / "
        f"{_pct(m['var_95_parametric'])} |",
        f"| CVaR 95 % (historical / parametric) | {_pct(m['cvar_95_historical'])} / "
        f"{_pct(m['cvar_95_parametric'])} |",
        f"| risk level | {results['risk_level']} |", "",
    ]
    for title, name in made:
        lines += [f"## {title}", "", f"![{title}]({name})", ""]
    lines += ["## Final target weights", "", "| symbol | weight | risk contribution |", "| --- | --- | --- |"]
    rc = results.get("risk_contributions") or {}
    for s, w in sorted(results["optimal_weights"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {s} | {_pct(w)} | {_pct(rc.get(s))} |")
    lines += ["", *sections.stress_section(results)]
    lines += ["## Rebalances", "",
              "| date | trigger | status | exp. return | exp. vol | Sharpe | turnover | est. costs (optimizer) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["rebalances"]:
        lines.append(f"| {r['date']} | {r['trigger']} | {r['status']} | {_pct(r['expected_return'])} | "
                     f"{_pct(r['expected_volatility'])} | {_num(r['sharpe'])} | {_pct(r['turnover'])} | "
                     f"{_pct(r['estimated_costs'])} |")
    trades = results["trades"]
    fees = float(np.sum([t["fee"] for t in trades])) if trades else 0.0
    lines += ["", *sections.failed_section(results), *sections.costs_section(results),
              *sections.attribution_section(results)]
    slippage = float(np.sum([t["slippage"] for t in trades])) if trades else 0.0
    lines += ["", f"Trades: {len(trades)} fills, fees {fees:,.2f}, slippage {slippage:,.2f}, "
              f"{len(results['rejected_orders'])} orders rejected by the pre-trade checks, "
              f"{len(results['alerts'])} alerts.", ""]
    lines += cash_lines(results) + alert_lines(results)
    lines += data_section(results.get("data") or {})
    path = dest / "report.md"
    path.write_text("\n".join(lines))
    return path


def data_section(data: dict) -> list[str]:
    """Where each symbol's prices came from, which close was used, and their quality."""
    if not data:
        return []
    lines = ["## Data", ""]
    if data.get("prices_file"):
        lines += [f"Prices file: `{data['prices_file']}`", ""]
    sources, quality = data.get("sources") or {}, data.get("quality") or {}
    lines += ["| symbol | source | price | completeness | accuracy | notes |", "| --- | --- | --- | --- | --- | --- |"]
    for sym, field in (data.get("price_field") or {}).items():
        src, q = sources.get(sym) or {}, quality.get(sym) or {}
        notes = "; ".join(f"{f['source']} failed: {f['reason']}" for f in src.get("failures", []))
        if q.get("breaches"):
            notes = "; ".join(filter(None, [notes, "below threshold: " + ", ".join(q["breaches"])]))
        lines.append(f"| {sym} | {src.get('source') or 'file'} | {field} | {_pct(q.get('completeness'))} | "
                     f"{_pct(q.get('accuracy'))} | {notes} |")
    for line in data.get("errors") or []:
        lines.append(f"\nNot served: {line}")
    for sym, why in (data.get("dropped") or {}).items():
        lines.append(f"\nDropped: {sym} ({why})")
    return lines + [""]
