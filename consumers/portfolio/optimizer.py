"""Portfolio optimizer: convex (and mixed-integer) programs in cvxpy. Pure, no I/O.

Objectives (weights sum to 1; the rest of the book's cash is not modelled):

- ``max_sharpe``: maximize ``(mu'w - rf - cost(w)) / sqrt(w' S w)`` through the
  usual homogenization (``y = k w``): minimize ``y' S y`` subject to
  ``(mu - rf)'y - c |y - k w0|_1 >= 1``, ``sum y = k``, ``k >= 0`` and every
  constraint scaled by ``k`` (PyPortfolioOpt's ``max_sharpe`` when ``c = 0``);
- ``min_variance``: minimize ``w' S w + c |w - w0|_1``;
- ``max_return``: maximize ``mu'w - c |w - w0|_1`` with ``sqrt(w' S w) <= target_volatility``.

Constraints (``Constraints``): per-position weight bounds (global and per symbol),
min/max number of positions (binary variables: a held position carries at least
``min_position_weight``; solved by SCIP from PyPI), max portfolio volatility
(a second-order cone), sector bounds from a symbol -> sector map, and a
transaction cost ``c`` per unit of turnover against the current weights ``w0``.

Infeasible constraints raise ``InfeasibleError`` whose ``conflicts`` name a
minimal set of constraint groups that cannot hold together (a deletion filter
over the groups, each test a feasibility solve) and whose ``explanations`` give
each group's clashing numbers and config key (``consumers.portfolio.infeasibility``).

``max_drawdown`` (riskfolio-lib's MDD formulation, linear): on the scenario
returns ``R`` (the estimation window's daily returns), the portfolio's
*uncompounded cumulative* return path ``cumsum(R w)`` never falls more than
``max_drawdown`` below its running peak: ``u_t >= u_{t-1} - (R w)_t``,
``u_t >= 0``, ``u_0 = 0``, ``u_t <= max_drawdown`` (every term scaled by ``k``
in the max-Sharpe homogenization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

OBJECTIVES = ("max_sharpe", "min_variance", "max_return")
_OK = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


@dataclass
class Constraints:
    min_weight: float = 0.0
    max_weight: float = 1.0
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # per-symbol overrides
    min_positions: int | None = None
    max_positions: int | None = None
    min_position_weight: float = 0.01  # the weight a counted position carries at least
    max_volatility: float | None = None  # annualized
    sectors: dict[str, str] = field(default_factory=dict)  # symbol -> sector
    sector_lower: dict[str, float] = field(default_factory=dict)
    sector_upper: dict[str, float] = field(default_factory=dict)
    transaction_cost: float = 0.0  # cost per unit of turnover (0.001 = 10 bp)
    max_drawdown: float | None = None  # of the in-sample uncompounded cumulative returns (riskfolio's MDD)


@dataclass
class OptimizationResult:
    weights: dict[str, float]
    objective: str
    expected_return: float
    volatility: float
    sharpe: float | None
    turnover: float
    estimated_costs: float
    status: str = "optimal"


class InfeasibleError(ValueError):
    """No portfolio satisfies the constraints; ``conflicts`` names the clashing groups.

    ``explanations``: group -> (the clashing numbers, the config key that sets it)."""

    def __init__(self, conflicts: list[str], detail: str = "",
                 explanations: dict[str, tuple[str, str]] | None = None):
        self.conflicts = conflicts
        self.detail = detail
        self.explanations = explanations or {}
        super().__init__(self.describe())

    def describe(self, source: str | None = None) -> str:
        """One line: every conflicting group with its numbers and where it is set (``source``: the file)."""
        parts = []
        for name in self.conflicts:
            text, key = self.explanations.get(name, (name, ""))
            text = text if text.startswith(name) else f"{name}: {text}"
            where = f"{source} {key}" if source and key else (key or source or "")
            parts.append(f"{text} (set in {where})" if where else text)
        msg = "infeasible constraints: " + "; ".join(parts)
        return msg + (f" ({self.detail})" if self.detail else "")


class OptimizationError(RuntimeError):
    """The solver failed for another reason (unbounded, numerical trouble)."""


def _sqrt_cov(cov: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))  # L with L L' = cov


def _bounds(symbols: list[str], c: Constraints) -> tuple[np.ndarray, np.ndarray]:
    lb = np.array([c.bounds.get(s, (c.min_weight, c.max_weight))[0] for s in symbols], dtype=float)
    ub = np.array([c.bounds.get(s, (c.min_weight, c.max_weight))[1] for s in symbols], dtype=float)
    return lb, ub


def _groups(x, scale, symbols: list[str], c: Constraints, L: np.ndarray, big_m: float,
            target_volatility: float | None = None, scenarios: np.ndarray | None = None) -> dict[str, list]:
    """Constraint groups on ``x`` (= scale * weights). Linear in (x, scale) except the cones."""
    lb, ub = _bounds(symbols, c)
    g: dict[str, list] = {"weight_bounds": [x >= scale * lb, x <= scale * ub]}
    if c.min_positions is not None or c.max_positions is not None:
        z = cp.Variable(len(symbols), boolean=True)
        m = max(c.min_position_weight, 1e-6)
        g["position_indicators"] = [x <= big_m * z, x >= m * scale - big_m * (1 - z)]
        if c.max_positions is not None:
            g["max_positions"] = [cp.sum(z) <= c.max_positions]
        if c.min_positions is not None:
            g["min_positions"] = [cp.sum(z) >= c.min_positions]
    for sector in sorted(set(c.sector_lower) | set(c.sector_upper)):
        idx = [i for i, s in enumerate(symbols) if c.sectors.get(s) == sector]
        total = cp.sum(x[idx]) if idx else cp.Constant(0.0)
        if sector in c.sector_upper:
            g[f"sector_upper[{sector}]"] = [total <= c.sector_upper[sector] * scale]
        if sector in c.sector_lower:
            g[f"sector_lower[{sector}]"] = [total >= c.sector_lower[sector] * scale]
    if c.max_volatility is not None:
        g["max_volatility"] = [cp.norm(L.T @ x, 2) <= c.max_volatility * scale]
    if target_volatility is not None:
        g["target_volatility"] = [cp.norm(L.T @ x, 2) <= target_volatility * scale]
    if c.max_drawdown is not None:
        g["max_drawdown"] = _drawdown_constraints(x, scale, scenarios, c.max_drawdown)
    return g


def _drawdown_constraints(x, scale, scenarios: np.ndarray | None, limit: float) -> list:
    """riskfolio-lib's MDD constraint on the uncompounded cumulative returns of ``scenarios @ x``."""
    if scenarios is None or len(scenarios) == 0:
        raise ValueError("max_drawdown needs the scenario returns of the estimation window")
    u = cp.Variable(scenarios.shape[0] + 1)
    path = scenarios @ x
    return [u[1:] >= u[:-1] - path, u[1:] >= 0, u[0] == 0, u[1:] <= limit * scale]


def _solve(problem: cp.Problem) -> str:
    solver = cp.SCIP if problem.is_mixed_integer() else cp.CLARABEL
    try:
        problem.solve(solver=solver)
    except cp.SolverError as exc:
        raise OptimizationError(f"{solver} failed: {exc}") from exc
    return problem.status


def feasible(symbols: list[str], cov: np.ndarray, c: Constraints, names: list[str] | None = None,
             target_volatility: float | None = None, excess: np.ndarray | None = None,
             scenarios: np.ndarray | None = None) -> bool:
    """Whether weights summing to 1 satisfy the named constraint groups (all when None)."""
    w = cp.Variable(len(symbols))
    lb, ub = _bounds(symbols, c)
    groups = _groups(w, 1.0, symbols, c, _sqrt_cov(cov), float(max(np.abs(ub).max(), 1.0)), target_volatility,
                     scenarios)
    if excess is not None:
        groups["positive_excess_return"] = [excess @ w >= 1e-9]
    cons = [cp.sum(w) == 1]
    for name, items in groups.items():
        if names is None or name in names or name == "position_indicators":
            cons += items
    return _solve(cp.Problem(cp.Minimize(0), cons)) in _OK


def diagnose(symbols: list[str], cov: np.ndarray, c: Constraints, target_volatility: float | None = None,
             excess: np.ndarray | None = None, scenarios: np.ndarray | None = None) -> list[str]:
    """A minimal set of constraint groups that cannot hold together (deletion filter)."""
    probe = cp.Variable(len(symbols))
    all_names = [n for n in _groups(probe, 1.0, symbols, c, np.eye(len(symbols)), 1.0, target_volatility,
                                    scenarios) if n != "position_indicators"]
    if excess is not None:
        all_names.append("positive_excess_return")
    if feasible(symbols, cov, c, all_names, target_volatility, excess, scenarios):
        return []
    keep = list(all_names)
    for name in list(all_names):
        trial = [n for n in keep if n != name]
        if not feasible(symbols, cov, c, trial, target_volatility, excess, scenarios):
            keep = trial  # still infeasible without it: not needed for the conflict
    return keep or ["budget (weights sum to 1)"]


def _lowest(symbols, cov: np.ndarray, c: Constraints, scenarios: np.ndarray | None, what: str) -> float:
    """The lowest volatility (or in-sample cumulative max drawdown) reachable within the weight bounds."""
    w = cp.Variable(len(symbols))
    lb, ub = _bounds(symbols, c)
    cons = [cp.sum(w) == 1, w >= lb, w <= ub]
    if what == "volatility":
        _solve(cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov))), cons))
        return float(math.sqrt(max(float(w.value @ cov @ w.value), 0.0)))
    if what == "return":  # ``scenarios`` holds the expected returns here
        _solve(cp.Problem(cp.Maximize(scenarios @ w), cons))
        return float(scenarios @ w.value)
    u, m = cp.Variable(len(scenarios) + 1), cp.Variable()
    cons += [u[1:] >= u[:-1] - scenarios @ w, u[1:] >= 0, u[0] == 0, u[1:] <= m]
    _solve(cp.Problem(cp.Minimize(m), cons))
    return float(m.value)


def infeasible(symbols: list[str], cov: np.ndarray, c: Constraints, target_volatility: float | None = None,
               excess: np.ndarray | None = None, scenarios: np.ndarray | None = None,
               risk_free_rate: float = 0.0) -> InfeasibleError:
    """The InfeasibleError for these constraints: the conflicting groups, each explained with its numbers."""
    from consumers.portfolio.infeasibility import explain

    names = diagnose(symbols, cov, c, target_volatility, excess, scenarios)
    explanations = explain(
        names, symbols, c, cov=cov, target_volatility=target_volatility, excess=excess,
        risk_free_rate=risk_free_rate,
        min_vol=lambda: _lowest(symbols, cov, c, None, "volatility"),
        max_ret=(lambda: _lowest(symbols, cov, c, excess + risk_free_rate, "return")) if excess is not None else None,
        min_mdd=(lambda: _lowest(symbols, cov, c, scenarios, "drawdown")) if scenarios is not None else None)
    return InfeasibleError(names, explanations=explanations)


def _result(symbols, w: np.ndarray, mu: np.ndarray, cov: np.ndarray, w0: np.ndarray, c: Constraints,
            objective: str, rf: float, status: str) -> OptimizationResult:
    w = np.where(np.abs(w) < 1e-9, 0.0, w)
    ret = float(mu @ w)
    vol = float(math.sqrt(max(w @ cov @ w, 0.0)))
    turnover = float(np.abs(w - w0).sum())
    return OptimizationResult(
        weights={s: float(v) for s, v in zip(symbols, w)}, objective=objective, expected_return=ret,
        volatility=vol, sharpe=(ret - rf) / vol if vol > 0 else None, turnover=turnover,
        estimated_costs=c.transaction_cost * turnover, status=status)


def optimize(mu: pd.Series, cov: pd.DataFrame, objective: str = "max_sharpe",
             constraints: Constraints | None = None, *, risk_free_rate: float = 0.0,
             target_volatility: float | None = None,
             current_weights: dict[str, float] | None = None,
             scenarios: pd.DataFrame | None = None) -> OptimizationResult:
    """Optimal weights over ``mu.index`` (annual expected returns, annual covariance).

    ``scenarios``: periodic returns (rows) per symbol (columns), needed by ``max_drawdown``."""
    c = constraints or Constraints()
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    symbols = [str(s) for s in mu.index]
    if not symbols:
        raise ValueError("no symbols to optimize")
    m = mu.to_numpy(dtype=float)
    S = cov.loc[mu.index, mu.index].to_numpy(dtype=float)
    if not (np.isfinite(m).all() and np.isfinite(S).all()):
        raise ValueError("expected returns and covariance must be finite")
    L = _sqrt_cov(S)
    w0 = np.array([(current_weights or {}).get(s, 0.0) for s in symbols], dtype=float)
    lb, ub = _bounds(symbols, c)
    tc = c.transaction_cost
    excess = m - risk_free_rate
    tv = target_volatility if objective == "max_return" else None
    if objective == "max_return" and tv is None:
        raise ValueError("max_return needs target_volatility")
    R = None
    if c.max_drawdown is not None:
        if scenarios is None:
            raise ValueError("max_drawdown needs the scenario returns (scenarios=)")
        R = scenarios[list(mu.index)].dropna().to_numpy(dtype=float)

    if objective == "max_sharpe":
        mixed = c.min_positions is not None or c.max_positions is not None
        k_cap = None
        if mixed:  # bound k for the big-M terms from the continuous relaxation
            relaxed = Constraints(**{**c.__dict__, "min_positions": None, "max_positions": None})
            try:
                k_cap = 10.0 * _max_sharpe(symbols, excess, S, L, w0, relaxed, None, R)[1]
            except InfeasibleError:
                k_cap = None
        for _attempt in range(2):
            try:
                w, k = _max_sharpe(symbols, excess, S, L, w0, c, k_cap, R)
            except InfeasibleError:
                raise infeasible(symbols, S, c, None, excess, R, risk_free_rate) from None
            if k_cap is None or k < 0.99 * k_cap:
                break
            k_cap *= 10.0
        return _result(symbols, w, m, S, w0, c, objective, risk_free_rate, "optimal")

    w = cp.Variable(len(symbols))
    cons = [cp.sum(w) == 1]
    for items in _groups(w, 1.0, symbols, c, L, float(max(np.abs(ub).max(), 1.0)), tv, R).values():
        cons += items
    cost = tc * cp.norm1(w - w0) if tc else 0
    if objective == "min_variance":
        obj = cp.Minimize(cp.quad_form(w, cp.psd_wrap(S)) + cost)
    else:
        obj = cp.Maximize(m @ w - cost)
    status = _solve(cp.Problem(obj, cons))
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        raise infeasible(symbols, S, c, tv, None, R, risk_free_rate)
    if status not in _OK or w.value is None:
        raise OptimizationError(f"solver status {status}")
    return _result(symbols, np.asarray(w.value), m, S, w0, c, objective, risk_free_rate, status)


def _max_sharpe(symbols, excess, S, L, w0, c: Constraints, k_cap: float | None,
                scenarios: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    n = len(symbols)
    y, k = cp.Variable(n), cp.Variable()
    _, ub = _bounds(symbols, c)
    big_m = float(max(np.abs(ub).max(), 1.0)) * (k_cap or 1.0)
    cons = [cp.sum(y) == k, k >= 0]
    if k_cap is not None:
        cons.append(k <= k_cap)
    for items in _groups(y, k, symbols, c, L, big_m, None, scenarios).values():
        cons += items
    if c.transaction_cost:
        cons.append(excess @ y - c.transaction_cost * cp.norm1(y - k * w0) >= 1)
    else:
        cons.append(excess @ y == 1)
    status = _solve(cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(S))), cons))
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE) or (status in _OK and k.value is not None
                                                                 and k.value <= 1e-12):
        raise InfeasibleError([])
    if status not in _OK or y.value is None:
        raise OptimizationError(f"solver status {status}")
    kv = float(k.value)
    return np.asarray(y.value) / kv, kv
