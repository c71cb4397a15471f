"""``ticktide risk --prices FILE --weights FILE``: portfolio risk without a bus;
``ticktide stress --portfolio P [--weights F]``: stress scenarios on demand from
the running risk consumer (a StressRequest on risk-requests.v1, the answer read
back from risk.v1 by its request id, printed as JSON).

- ``--prices``: a wide close-price CSV, ``date`` then one column per symbol
  (e.g. tests/data/stock_prices_20.csv); rows sorted by date.
- ``--weights``: JSON (``{"AAPL": 0.3, ...}`` or ``{"weights": {...}}``) or
  CSV (``symbol,weight`` rows, header optional) of symbol -> weight, a
  fraction of portfolio value; the rest is cash (return 0).
- The portfolio is rebalanced to the weights every period, so its return is
  ``sum(w_i * r_i)``; rows where a held symbol has no price are dropped.
  The metrics use the last ``--lookback`` returns (config ``lookback``,
  default 252; 0 = all), annualized with ``periods_per_year``.
- ``--benchmark SPY`` (or config ``benchmark``): a column of the price file
  the portfolio is compared with (beta, alpha, tracking error, information
  ratio) and whose beta scales the market crash; it need not be held.
- Prints one RiskUpdate JSON object (every metric, exposures, sector
  exposures from the config's ``[sectors]`` or ``--sectors`` JSON, and the
  stress results), built by the same ``report.build_update`` and
  ``stress.run_all`` as the live consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
import time
from pathlib import Path

import msgspec

from consumers.risk.config import RiskConfig
from streaming.commandline import (CommandError, add_bus_option, add_config_option, add_input_option,
                                   input_file, start_cli_bus)
from streaming.config import config_error

# pandas, numpy and the risk maths load when a command runs, not when the CLI registers its commands


def read_weights(path: str) -> dict[str, float]:
    """symbol -> weight; a non-finite or non-numeric weight is an error naming it."""
    text = Path(path).read_text()
    if path.lower().endswith(".json") or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON: {exc} (give {{\"SYMBOL\": weight, ...}})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object of symbol -> weight")
        if isinstance(data.get("weights"), dict):
            data = data["weights"]
        out = {}
        for k, v in data.items():
            out[str(k)] = _weight(v, f"{path}: {k}")
        return out
    out: dict[str, float] = {}
    for no, row in enumerate(csv.reader(text.splitlines()), 1):
        if len(row) < 2 or not row[0].strip():
            continue
        try:
            value = float(row[1])
        except ValueError:
            if no == 1:
                continue  # header
            raise ValueError(f"{path} line {no}: weight {row[1]!r} of {row[0].strip()} is not a number") from None
        out[row[0].strip()] = _weight(value, f"{path} line {no}: {row[0].strip()}")
    return out


def _weight(value, where: str) -> float:
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: weight {value!r} is not a number") from None
    if not math.isfinite(w):
        raise ValueError(f"{where}: weight {value!r} is not finite (give a finite fraction of portfolio value)")
    return w


def read_prices(path: str) -> "pd.DataFrame":
    """A wide close CSV indexed by UTC date: dates parsed and unique, prices finite, sorted by date
    (saying so once on stderr when the file was not)."""
    import numpy as np
    import pandas as pd

    from streaming.tables import check_finite, check_unique, parse_dates, sort_order
    df = pd.read_csv(path)
    date_col = "date" if "date" in df.columns else df.columns[0]
    if len(df) < 2:
        raise ValueError(f"{path}: {len(df)} price rows; risk needs at least 2 dates to compute a return")
    df[date_col] = parse_dates(df[date_col].tolist(), column=date_col)
    check_unique(df[date_col].tolist(), shown=df[date_col].dt.strftime("%Y-%m-%d").tolist())
    prices = df.set_index(date_col)
    for col in prices.columns:
        if not pd.api.types.is_numeric_dtype(prices[col]):
            converted = pd.to_numeric(prices[col], errors="coerce")
            bad = prices[col].notna() & converted.isna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValueError(f"line {i + 2}: price {prices[col].iloc[i]!r} for {col} is not a number")
            prices[col] = converted
    check_finite(prices)
    nonpositive = np.argwhere(prices.to_numpy(dtype=float) <= 0)
    if len(nonpositive):
        r, c = (int(x) for x in nonpositive[0])
        raise ValueError(f"line {r + 2}: price {float(prices.iat[r, c])!r} for {prices.columns[c]} is not positive "
                         "(give a positive price or leave the cell empty)")
    if sort_order(prices.index) is not None:
        print(f"ticktide risk: the rows of {path} were not in date order: sorted {len(prices)} rows by date",
              file=sys.stderr)
        prices = prices.sort_index(kind="stable")
    return prices


def asset_returns(prices: "pd.DataFrame", weights: dict[str, float]) -> "pd.DataFrame":
    missing = [s for s in weights if s not in prices.columns]
    if missing:
        raise ValueError(f"no prices for {', '.join(missing)}")
    held = [s for s in weights if weights[s]]
    px = prices[held].dropna()
    if len(px) < 2:
        raise ValueError(f"{len(px)} dates with a price for every held symbol ({', '.join(held)}); "
                         "risk needs at least 2")
    return px.pct_change().iloc[1:]


def assess(prices: "pd.DataFrame", weights: dict[str, float], config: RiskConfig | None = None,
           portfolio_id: str = "offline", value: float | None = None,
           ts_proc: int | None = None) -> "RiskUpdate":
    import numpy as np
    import pandas as pd

    from consumers.risk.report import build_update
    from consumers.risk.stress import run_all

    config = config or RiskConfig()
    rets = asset_returns(prices, weights)
    if config.lookback:
        rets = rets.iloc[-config.lookback:]
    bench = None
    if config.benchmark:
        if config.benchmark not in prices.columns:
            raise ValueError(f"benchmark {config.benchmark} is not a column of the price file "
                             "(add its closes or choose another --benchmark)")
        b = prices[config.benchmark].pct_change(fill_method=None).reindex(rets.index).to_numpy()
        bench = (config.benchmark, b)
    w = {s: float(weights[s]) for s in rets.columns}
    port = rets.to_numpy() @ np.array([w[s] for s in rets.columns]) if len(rets.columns) else np.zeros(len(rets))
    value = config.initial_cash if value is None else value
    last_px = prices[list(rets.columns)].loc[rets.index[-1]] if len(rets) else pd.Series(dtype=float)
    positions = {s: w[s] * value / float(last_px[s]) for s in rets.columns}
    history = {s: rets[s].to_numpy() for s in rets.columns}
    ts_event = int(rets.index[-1].value) if len(rets) else 0
    return build_update(
        portfolio_id=portfolio_id, ts_event=ts_event, ts_proc=ts_proc if ts_proc is not None else time.time_ns(),
        value=value, cash=value * (1.0 - sum(w.values())), positions=positions, exposures=w,
        sectors=config.sectors, pnl=value * (float(np.prod(1.0 + port)) - 1.0), returns=port,
        lookback=None, periods_per_year=config.periods_per_year, risk_free_rate=config.risk_free_rate,
        benchmark=config.benchmark, benchmark_returns=bench[1] if bench else None,
        stress=run_all(w, history, None, config.stress_config(), bench))


def cmd_risk(args: argparse.Namespace) -> int:
    try:
        config = RiskConfig.load(args.config)
    except (ValueError, msgspec.MsgspecError) as exc:
        raise CommandError(config_error(args.config, exc), "fix the file") from None
    if args.lookback is not None:
        config.lookback = args.lookback
    if args.benchmark:
        config.benchmark = args.benchmark
    try:
        if args.sectors:
            config.sectors = {str(k): str(v) for k, v in json.loads(Path(args.sectors).read_text()).items()}
        update = assess(read_prices(args.input), read_weights(args.weights), config,
                        portfolio_id=args.portfolio_id, value=args.value)
    except KeyError as exc:
        print(f"ticktide risk: no column {exc} in the prices (check the symbols of --weights)", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"ticktide risk: {exc}", file=sys.stderr)
        return 2
    from consumers.risk.report import check_limits
    from streaming.tables import standard_json

    out = msgspec.to_builtins(update)
    out["limit_breaches"] = [b.message(update.portfolio_id) for b in check_limits(update, config.limits)]
    out, missing = standard_json(out)
    if missing:
        out["null_reasons"] = missing
    sys.stdout.write(json.dumps(out, indent=2 if args.pretty else None, allow_nan=False) + "\n")
    return 0


# -- ticktide stress: ask the running risk consumer ------------------------------------
async def _request_stress(args: argparse.Namespace) -> int:
    import uuid

    from schemas.events import StressRequest
    from schemas.topics import RISK, RISK_REQUESTS
    from streaming import codec

    weights = read_weights(args.weights) if args.weights else None
    now = time.time_ns()
    req = StressRequest(request_id=uuid.uuid4().hex, portfolio_id=args.portfolio, ts_event=now,
                        weights=weights, ts_ingest=now)
    bus = await start_cli_bus(args)
    try:
        await bus.ensure_topics([RISK.name, RISK_REQUESTS.name])
        # read risk.v1 from its start, outside any shared group, so the answer cannot be
        # missed however fast it comes; only records holding the request id are decoded
        sub = bus.subscribe([RISK.name], f"ticktide-stress-{req.request_id[:12]}", from_beginning=True)
        try:
            await bus.publish(RISK_REQUESTS.name, codec.key_for(RISK_REQUESTS.name, req), codec.encode(req))
            await bus.flush()
            needle = req.request_id.encode()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + args.timeout
            async for records in sub.batches(max_records=1000, timeout_ms=200):
                for r in records:
                    if needle in r.value:
                        update = codec.decode(RISK.name, r.value)
                        if update.request_id == req.request_id:
                            out = msgspec.to_builtins(update)
                            sys.stdout.write(json.dumps(out, indent=2 if args.pretty else None) + "\n")
                            return 0
                if loop.time() >= deadline:
                    print(f"ticktide stress: no answer for portfolio {args.portfolio!r} in {args.timeout:g} s "
                          "(is `ticktide consume risk` running on this bus? a portfolio it has not seen "
                          "needs --weights; see dlq.v1)", file=sys.stderr)
                    return 1
            return 1
        finally:
            await sub.close()
    finally:
        await bus.close()


def cmd_stress(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_request_stress(args))
    except (ValueError, msgspec.MsgspecError) as exc:
        print(f"ticktide stress: {exc}", file=sys.stderr)
        return 2


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("risk", help="portfolio risk metrics and stress tests from a price CSV and weights",
                       description="Risk of a portfolio rebalanced to fixed weights over a wide close CSV: every "
                                   "metric (volatility, VaR, CVaR, drawdown, Sharpe, ...), exposures and the three "
                                   "stress tests, as one RiskUpdate JSON object (standard JSON: a value that "
                                   "cannot be computed is null, with its reason under null_reasons). Rows are "
                                   "sorted by date; duplicated or unparseable dates and non-finite prices or "
                                   "weights are errors.")
    add_input_option(p, "daily prices: wide close CSV, date + one column per symbol", "--prices")
    p.add_argument("--weights", required=True, type=input_file, metavar="FILE",
                   help="JSON or CSV of symbol -> weight")
    add_config_option(p, "risk config (TOML)")
    p.add_argument("--lookback", type=int, default=None, help="returns used (default: config lookback, 0 = all)")
    p.add_argument("--sectors", default=None, help="JSON symbol -> sector (overrides the config's)")
    p.add_argument("--value", type=float, default=None, help="portfolio value (default: config initial_cash)")
    p.add_argument("--benchmark", default=None, metavar="SYMBOL",
                   help="price-file column to compare with, e.g. SPY (default: config benchmark)")
    p.add_argument("--portfolio-id", default="offline", help="portfolio_id in the output")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.set_defaults(func=cmd_risk)

    p = sub.add_parser("stress", help="run the stress scenarios now in the running risk consumer",
                       description="Ask the running risk consumer (`ticktide consume risk`) to stress a portfolio "
                                   "now: a StressRequest goes to risk-requests.v1 and the answer, read back from "
                                   "risk.v1, is printed as JSON.")
    add_bus_option(p)
    p.add_argument("--portfolio", required=True, help="portfolio_id to stress")
    p.add_argument("--weights", default=None, type=input_file, metavar="FILE",
                   help="JSON or CSV of symbol -> weight to stress instead of the current book")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.set_defaults(func=cmd_stress)
