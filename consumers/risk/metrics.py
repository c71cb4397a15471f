"""Risk metrics over a 1-D array of simple periodic returns. Pure numpy, no I/O.

Conventions are empyrical's (tests compare with ``empyrical-reloaded`` to
1e-9), with 252 periods a year by default:

- ``annualized_volatility``: ``std(returns, ddof=1) * sqrt(periods)``;
- ``var_historical``: the ``cutoff`` (5 %) percentile of returns, linear
  interpolation (``np.percentile``), a negative number for a loss;
- ``cvar_historical``: the mean of the ``int((n - 1) * cutoff) + 1`` lowest
  returns (empyrical's ``conditional_value_at_risk``: the returns at or below
  the VaR);
- ``var_parametric``: normal VaR ``mean + z * std(ddof=1)`` with ``z`` the
  ``cutoff`` quantile of the standard normal (-1.645 for 5 %);
- ``cvar_parametric``: normal expected shortfall
  ``mean - std * pdf(z) / cutoff``;
- ``max_drawdown``: the worst peak-to-trough fall of the compounded returns,
  as a negative fraction (empyrical's sign); the series starts at 1, so a
  first-period loss counts;
- ``sharpe``: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods)``;
- ``sortino``: ``mean(r - required) * periods / downside_risk`` with
  ``downside_risk = sqrt(mean(min(r - required, 0) ** 2)) * sqrt(periods)``.
- ``risk_metrics(..., risk_free=rf)``: ``rf`` is an *annual* rate (the
  optimizer's, 0.02 by default in the configs); Sharpe subtracts and Sortino
  requires ``rf / periods`` per period (empyrical's ``risk_free`` /
  ``required_return`` arguments);
- ``annual_return``: the compound annual growth rate,
  ``prod(1 + r) ** (periods / n) - 1``; ``calmar``: ``annual_return /
  |max_drawdown|`` (None without a drawdown).

Against a benchmark's returns ``b`` (aligned on their common last periods,
pairs with a NaN dropped): ``beta = cov(r, b) / var(b)``; ``alpha`` (annualized)
``(1 + mean(r - rf_p - beta (b - rf_p))) ** periods - 1``; ``tracking_error``
``std(r - b, ddof=1) * sqrt(periods)``; ``information_ratio`` ``mean(r - b) /
std(r - b, ddof=1) * sqrt(periods)`` (empyrical's ``excess_sharpe``,
annualized).

NaN returns are dropped first. Too few returns (fewer than 2; 1 for VaR,
CVaR and drawdown) give ``None``; a zero denominator gives ``inf``/``nan``
like empyrical, reported as ``None`` by ``risk_metrics``.

Risk level (``risk_level``): ``low`` when volatility < 0.10 and VaR95 > -0.15
and |max drawdown| < 0.20; ``medium`` when < 0.20, > -0.25, < 0.30; otherwise
``high``. The VaR used is the historical one; a metric that is unknown (too
little history) does not count against the level.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

PERIODS_PER_YEAR = 252
CUTOFF = 0.05
_N = NormalDist()


def clean(returns) -> np.ndarray:
    r = np.asarray(returns, dtype=float).ravel()
    return r[~np.isnan(r)]


def simple_returns(values) -> np.ndarray:
    """Period-over-period simple returns of a value (price or equity) series."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.diff(v) / v[:-1]


def annualized_volatility(returns, periods: int = PERIODS_PER_YEAR) -> float | None:
    r = clean(returns)
    if r.size < 2:
        return None
    return float(np.std(r, ddof=1) * math.sqrt(periods))


def var_historical(returns, cutoff: float = CUTOFF) -> float | None:
    r = clean(returns)
    if r.size < 1:
        return None
    return float(np.percentile(r, 100 * cutoff))


def cvar_historical(returns, cutoff: float = CUTOFF) -> float | None:
    r = clean(returns)
    if r.size < 1:
        return None
    k = int((r.size - 1) * cutoff)
    return float(np.mean(np.partition(r, k)[: k + 1]))


def var_parametric(returns, cutoff: float = CUTOFF) -> float | None:
    r = clean(returns)
    if r.size < 2:
        return None
    return float(np.mean(r) + _N.inv_cdf(cutoff) * np.std(r, ddof=1))


def cvar_parametric(returns, cutoff: float = CUTOFF) -> float | None:
    r = clean(returns)
    if r.size < 2:
        return None
    z = _N.inv_cdf(cutoff)
    return float(np.mean(r) - np.std(r, ddof=1) * _N.pdf(z) / cutoff)


def drawdown_series(returns) -> np.ndarray:
    r = clean(returns)
    wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    peak = np.maximum.accumulate(wealth)
    return ((wealth - peak) / peak)[1:]


def max_drawdown(returns) -> float | None:
    r = clean(returns)
    if r.size < 1:
        return None
    return float(np.min(drawdown_series(r)))


def sharpe(returns, risk_free: float = 0.0, periods: int = PERIODS_PER_YEAR) -> float | None:
    r = clean(returns)
    if r.size < 2:
        return None
    adj = r - risk_free
    std = np.std(adj, ddof=1)
    if np.max(adj) == np.min(adj):
        std = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.mean(adj), std) * math.sqrt(periods))


def downside_risk(returns, required_return: float = 0.0, periods: int = PERIODS_PER_YEAR) -> float | None:
    r = clean(returns)
    if r.size < 1:
        return None
    d = np.clip(r - required_return, -np.inf, 0.0)
    return float(np.sqrt(np.mean(d * d)) * math.sqrt(periods))


def sortino(returns, required_return: float = 0.0, periods: int = PERIODS_PER_YEAR) -> float | None:
    r = clean(returns)
    if r.size < 2:
        return None
    dr = downside_risk(r, required_return, periods)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.mean(r - required_return) * periods, dr))


def annual_return(returns, periods: int = PERIODS_PER_YEAR) -> float | None:
    r = clean(returns)
    if r.size < 1:
        return None
    return float(np.prod(1.0 + r) ** (periods / r.size) - 1.0)


def calmar(returns, periods: int = PERIODS_PER_YEAR) -> float | None:
    mdd = max_drawdown(returns)
    ann = annual_return(returns, periods)
    if mdd is None or ann is None or mdd >= 0:
        return None
    return ann / abs(mdd)


def aligned(returns, benchmark) -> tuple[np.ndarray, np.ndarray]:
    """The two series on their common last periods, without the pairs where either is NaN."""
    r, b = np.asarray(returns, dtype=float).ravel(), np.asarray(benchmark, dtype=float).ravel()
    n = min(r.size, b.size)
    r, b = r[r.size - n:], b[b.size - n:]
    ok = ~(np.isnan(r) | np.isnan(b))
    return r[ok], b[ok]


def beta(returns, benchmark) -> float | None:
    r, b = aligned(returns, benchmark)
    if r.size < 2:
        return None
    var = np.var(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean((b - b.mean()) * r) / var)


def alpha(returns, benchmark, risk_free: float = 0.0, periods: int = PERIODS_PER_YEAR) -> float | None:
    """Annualized Jensen's alpha; ``risk_free`` per period."""
    r, b = aligned(returns, benchmark)
    bt = beta(r, b)
    if bt is None:
        return None
    return float((1.0 + np.mean((r - risk_free) - bt * (b - risk_free))) ** periods - 1.0)


def tracking_error(returns, benchmark, periods: int = PERIODS_PER_YEAR) -> float | None:
    r, b = aligned(returns, benchmark)
    if r.size < 2:
        return None
    return float(np.std(r - b, ddof=1) * math.sqrt(periods))


def information_ratio(returns, benchmark, periods: int = PERIODS_PER_YEAR) -> float | None:
    r, b = aligned(returns, benchmark)
    return sharpe(r - b, 0.0, periods)  # the Sharpe ratio of the active return (empyrical's excess_sharpe x sqrt)


def benchmark_metrics(returns, benchmark, risk_free: float = 0.0,
                      periods: int = PERIODS_PER_YEAR) -> dict[str, float | None]:
    """beta, alpha (annualized), tracking error and information ratio; ``risk_free`` annual."""
    rf = risk_free / periods
    out = {"beta": beta(returns, benchmark), "alpha": alpha(returns, benchmark, rf, periods),
           "tracking_error": tracking_error(returns, benchmark, periods),
           "information_ratio": information_ratio(returns, benchmark, periods)}
    return {k: _finite(v) for k, v in out.items()}


def risk_level(volatility: float | None, var95: float | None, max_dd: float | None) -> str:
    """``low``/``medium``/``high`` from annualized vol, VaR95 (negative) and max drawdown (either sign)."""
    dd = None if max_dd is None else abs(max_dd)

    def within(v_lim: float, var_lim: float, dd_lim: float) -> bool:
        return ((volatility is None or volatility < v_lim)
                and (var95 is None or var95 > var_lim)
                and (dd is None or dd < dd_lim))

    if within(0.10, -0.15, 0.20):
        return "low"
    if within(0.20, -0.25, 0.30):
        return "medium"
    return "high"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def risk_metrics(returns, periods: int = PERIODS_PER_YEAR, cutoff: float = CUTOFF,
                 lookback: int | None = None, risk_free: float = 0.0,
                 benchmark=None) -> dict[str, float | str | None]:
    """Every metric of a RiskUpdate over the last ``lookback`` returns (all when None).

    ``risk_free``: annual rate for Sharpe and Sortino; ``benchmark``: its periodic
    returns, aligned on the last periods, adds beta, alpha, tracking error and
    information ratio."""
    raw = np.asarray(returns, dtype=float).ravel()
    r = clean(raw)
    if lookback is not None and lookback > 0:
        r, raw = r[-lookback:], raw[-lookback:]
    rf = risk_free / periods
    vol = annualized_volatility(r, periods)
    var_h = var_historical(r, cutoff)
    mdd = max_drawdown(r)
    out = {
        "volatility": vol,
        "var_95_historical": var_h,
        "var_95_parametric": var_parametric(r, cutoff),
        "cvar_95_historical": cvar_historical(r, cutoff),
        "cvar_95_parametric": cvar_parametric(r, cutoff),
        "max_drawdown": mdd,
        "sharpe": sharpe(r, rf, periods),
        "sortino": sortino(r, rf, periods),
        "annual_return": annual_return(r, periods),
        "calmar": calmar(r, periods),
    }
    if benchmark is not None:
        out.update(benchmark_metrics(raw, benchmark, risk_free, periods))
    out = {k: _finite(v) for k, v in out.items()}
    out["risk_level"] = risk_level(out["volatility"], out["var_95_historical"], out["max_drawdown"]) if r.size >= 2 else None
    return out
