"""Expected returns and covariance estimators over a close-price window. Pure numpy/pandas.

Conventions follow PyPortfolioOpt so the optimizer can be checked against it:

- returns: ``prices.pct_change(fill_method=None)`` with all-NaN rows dropped;
- ``mean_historical_return``: ``returns.mean() * frequency`` (no compounding);
- ``sample_cov``: ``returns.cov() * frequency`` (pairwise complete observations);
- ``ledoit_wolf``: scikit-learn's Ledoit-Wolf shrinkage towards a scaled
  identity, on the complete rows, annualized;
- ``factor_model``: a statistical (PCA) factor model with ``k`` factors,
  ``B F B' + diag(residual variance)``, annualized.

Every covariance is symmetrized and, if needed, its negative eigenvalues are
clipped (``nearest_psd``) so the optimizer always gets a PSD matrix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FREQUENCY = 252
RISK_MODELS = ("sample", "ledoit_wolf", "factor")


def returns_from_prices(prices: pd.DataFrame) -> pd.DataFrame:
    return prices.pct_change(fill_method=None).dropna(how="all")


def mean_historical_return(prices: pd.DataFrame, frequency: int = FREQUENCY) -> pd.Series:
    return returns_from_prices(prices).mean() * frequency


def nearest_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetrize and clip negative eigenvalues (spectral fix)."""
    c = (np.asarray(cov, dtype=float) + np.asarray(cov, dtype=float).T) / 2
    vals, vecs = np.linalg.eigh(c)
    if vals.min() >= 0:
        return c
    fixed = (vecs * np.clip(vals, 0.0, None)) @ vecs.T
    return (fixed + fixed.T) / 2


def sample_cov(prices: pd.DataFrame, frequency: int = FREQUENCY) -> pd.DataFrame:
    r = returns_from_prices(prices)
    cov = nearest_psd(r.cov().to_numpy() * frequency)
    return pd.DataFrame(cov, index=prices.columns, columns=prices.columns)


def ledoit_wolf(prices: pd.DataFrame, frequency: int = FREQUENCY) -> pd.DataFrame:
    from sklearn.covariance import ledoit_wolf as _lw

    r = returns_from_prices(prices).dropna()
    if len(r) < 2:
        raise ValueError("Ledoit-Wolf needs at least 2 complete return rows")
    shrunk, _ = _lw(r.to_numpy())
    cov = nearest_psd(shrunk * frequency)
    return pd.DataFrame(cov, index=prices.columns, columns=prices.columns)


def factor_model(prices: pd.DataFrame, n_factors: int = 3, frequency: int = FREQUENCY) -> pd.DataFrame:
    """Statistical factor model: the top ``n_factors`` principal components of the returns."""
    r = returns_from_prices(prices).dropna()
    if len(r) < 2:
        raise ValueError("the factor model needs at least 2 complete return rows")
    x = r.to_numpy() - r.to_numpy().mean(axis=0)
    k = max(1, min(n_factors, x.shape[1], x.shape[0] - 1))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    loadings = vt[:k].T  # n x k, orthonormal columns
    factors = x @ loadings  # T x k factor returns
    f_cov = np.atleast_2d(np.cov(factors, rowvar=False, ddof=1))
    resid = x - factors @ loadings.T
    d = np.var(resid, axis=0, ddof=1)
    cov = nearest_psd((loadings @ f_cov @ loadings.T + np.diag(d)) * frequency)
    return pd.DataFrame(cov, index=prices.columns, columns=prices.columns)


def estimate(prices: pd.DataFrame, model: str = "sample", frequency: int = FREQUENCY,
             n_factors: int = 3) -> tuple[pd.Series, pd.DataFrame]:
    """Expected annual returns and the annualized covariance of ``model``."""
    mu = mean_historical_return(prices, frequency)
    if model == "sample":
        cov = sample_cov(prices, frequency)
    elif model == "ledoit_wolf":
        cov = ledoit_wolf(prices, frequency)
    elif model == "factor":
        cov = factor_model(prices, n_factors, frequency)
    else:
        raise ValueError(f"unknown risk model {model!r}; choose one of {', '.join(RISK_MODELS)}")
    return mu, cov


def risk_contributions(weights: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each position's share of portfolio variance (sums to 1 when the variance is positive)."""
    w = np.asarray(weights, dtype=float)
    var = float(w @ cov @ w)
    if var <= 0:
        return np.zeros_like(w)
    return w * (cov @ w) / var
