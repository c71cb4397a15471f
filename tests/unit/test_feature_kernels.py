"""Kernels vs the full-recompute reference: every feature, every row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import FeatureEngine, compute
from streaming.kernels.reference import reference_features
from tests.real_features import btcusdt_trades

DATA = Path(__file__).resolve().parents[1] / "data"
REL, ABS = 1e-9, 1e-12


def assert_parity(prices, sizes=None, config=None, label=""):
    got = compute(prices, sizes, config)
    ref = reference_features(prices, sizes, config)
    want = ref.to_numpy()
    assert got.shape == want.shape
    for j, name in enumerate(ref.columns):
        a, b = got[:, j], want[:, j]
        null_a, null_b = np.isnan(a), np.isnan(b)
        if (null_a != null_b).any():
            i = int(np.argmax(null_a != null_b))
            pytest.fail(f"{label} {name}: null mismatch at row {i}: kernel {a[i]!r} reference {b[i]!r}")
        ok = ~null_b
        err = np.abs(a[ok] - b[ok])
        tol = np.maximum(REL * np.abs(b[ok]), ABS)
        if (err > tol).any():
            i = int(np.flatnonzero(ok)[np.argmax(err / tol)])
            pytest.fail(f"{label} {name}: row {i}: kernel {a[i]!r} reference {b[i]!r}")


@pytest.fixture(scope="module")
def btc_trades():
    trades = btcusdt_trades()
    return np.array([t.price for t in trades]), np.array([t.size for t in trades])


@pytest.fixture(scope="module")
def stocks():
    return pd.read_csv(DATA / "stock_prices_20.csv")


def test_btcusdt_trade_session(btc_trades):
    prices, sizes = btc_trades
    assert len(prices) > 9000
    assert_parity(prices, sizes, label="BTCUSDT")


def test_all_20_daily_equity_series(stocks):
    cols = [c for c in stocks.columns if c != "date"]
    assert len(cols) == 20
    for c in cols:
        s = stocks[c].dropna().to_numpy()
        assert_parity(s, None, label=c)


def _adversarial():
    rng = np.random.default_rng(20240808)
    n = 6000
    tiny = 1e5 * np.cumprod(1 + 1e-9 * rng.standard_normal(n))  # 1e5 level, 1e-9 relative moves
    mixed = tiny.copy()
    mixed[1000:1300] = mixed[1000]  # flat stretch
    mixed[2000:] *= 1.3  # jump up
    mixed[3000:3070] = mixed[3000]
    mixed[4000:] *= 0.5  # jump down
    flat = np.repeat(rng.random(60) * 100 + 1, rng.integers(1, 120, 60))
    jumps = 100 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01
                                   + (rng.random(n) < 0.01) * rng.standard_normal(n) * 2))
    jumps[500:700] = jumps[500]
    ulp = np.full(3000, 1e5)
    ulp[::7] = np.nextafter(1e5, 2e5)  # one-ulp wiggles
    ulp[1000] = 2e5  # a jump, then one-ulp noise leaves the window
    btclike = 6e4 + np.round(rng.standard_normal(n).cumsum() * 0.01, 2)
    return {
        "tiny_moves_1e5": (tiny, rng.random(n)),
        "mixed_flat_jumps_1e5": (mixed, rng.random(n)),
        "flat_stretches": (flat, np.where(rng.random(len(flat)) < 0.5, 0.0, 1.0)),
        "jumps": (jumps, rng.random(n) * 1e3),
        "ulp_wiggles": (ulp, None),
        "btc_level_cents": (btclike, rng.random(n) ** 8 * 10),
        "geometric": (1.0001 ** np.arange(2000.0), None),
        "constant": (np.full(300, 50.0), np.ones(300)),
        "short": (np.array([10.0, 11.0, 9.0]), np.array([1.0, 2.0, 3.0])),
    }


@pytest.mark.parametrize("name", list(_adversarial()))
def test_adversarial_series(name):
    prices, sizes = _adversarial()[name]
    assert_parity(prices, sizes, label=name)


def test_custom_config_parity(btc_trades):
    cfg = FeatureConfig(return_periods=(2, 100), volatility_windows=(2, 3, 120),
                        momentum_periods=(1, 2), volume_periods=(1, 130), price_levels=(1, 3, 200))
    prices, sizes = btc_trades
    assert_parity(prices[:3000], sizes[:3000], cfg, label="custom")


def test_null_until_window_full():
    out = compute(np.arange(1.0, 101.0), np.ones(100))
    names = FeatureConfig().feature_names()
    first = {n: int(np.argmax(~np.isnan(out[:, j]))) if (~np.isnan(out[:, j])).any() else None
             for j, n in enumerate(names)}
    assert first["return_1"] == 1 and first["return_63"] == 63
    assert first["volatility_5"] == 5 and first["volatility_63"] == 63  # w log returns
    assert first["rsi_14"] == 14  # TA-Lib: needs n changes
    assert first["volume_ma_5"] == 4 and first["vwap_21"] == 20
    assert first["support_10"] == 9 and first["resistance_50"] == 49
    assert first["zscore_5"] == 4
    # TA-Lib: an EMA needs its span; MACD needs the slow EMA; the signal needs 9 MACD values
    assert first["ema_12"] == 11 and first["ema_26"] == 25
    assert first["macd"] == 25 and first["macd_signal"] == 33
    assert first["mid"] is None and first["spread"] is None


def test_interleaved_symbols_and_quotes_match_single_series(btc_trades):
    prices, sizes = btc_trades
    prices, sizes = prices[:2000], sizes[:2000]
    rng = np.random.default_rng(3)
    n_sym = 37
    scale = 1 + np.arange(n_sym) / 10
    eng = FeatureEngine(capacity=2)  # grows by doubling
    rows = np.array([eng.add_symbol(f"S{i}") for i in range(n_sym)])
    order = rng.permutation(np.repeat(np.arange(n_sym), len(prices)))
    pos = np.zeros(n_sym, dtype=int)
    idx = np.empty(len(order), dtype=int)
    for t, s in enumerate(order):
        idx[t] = pos[s]
        pos[s] += 1
    p = prices[idx] * scale[order]
    q = sizes[idx]
    out = np.empty((len(order), eng.n_features))
    for lo in range(0, len(order), 7777):  # uneven batches
        eng.update_trades(rows[order[lo:lo + 7777]], p[lo:lo + 7777], q[lo:lo + 7777], out[lo:lo + 7777])
    for s in (0, 5, n_sym - 1):
        single = compute(prices * scale[s], sizes)
        np.testing.assert_array_equal(out[order == s], single)
    # quotes change only mid/spread, and later trades carry them
    row = rows[0]
    before = eng.state[row].copy()
    qo = eng.update_quotes(np.array([row]), np.array([100.0]), np.array([100.5]))
    mid, spread = eng.names.index("mid"), eng.names.index("spread")
    assert qo[0, mid] == 100.25 and qo[0, spread] == 0.5
    np.testing.assert_array_equal(np.delete(qo[0], [mid, spread]), np.delete(out[order == 0][-1], [mid, spread]))
    assert eng.count(row) == int(before[0])
    to = eng.update_trades(np.array([row]), np.array([prices[0]]), np.array([1.0]))
    assert to[0, mid] == 100.25 and to[0, spread] == 0.5


def test_state_roundtrip_and_size():
    eng = FeatureEngine()
    assert eng.state_bytes_per_symbol <= 4096
    a, b = eng.add_symbol("A"), eng.add_symbol("B")
    rng = np.random.default_rng(1)
    p = 100 * np.exp(np.cumsum(rng.standard_normal(500) * 0.01))
    q = rng.random(500)
    eng.update_trades(np.full(300, a), p[:300], q[:300])
    eng.load_state(b, eng.state_of(a))
    oa = eng.update_trades(np.full(200, a), p[300:], q[300:])
    ob = eng.update_trades(np.full(200, b), p[300:], q[300:])
    np.testing.assert_array_equal(oa, ob)
    with pytest.raises(ValueError):
        eng.load_state(b, b"\0" * 16)


def test_config_files(tmp_path):
    t = tmp_path / "f.toml"
    t.write_text("[features]\nreturn_periods = [1, 2]\nprice_levels = [3]\n")
    cfg = FeatureConfig.load(t)
    assert cfg.return_periods == (1, 2) and cfg.price_levels == (3,)
    assert cfg.volatility_windows == (5, 21, 63)
    j = tmp_path / "f.json"
    j.write_text('{"momentum_periods": [7]}')
    assert FeatureConfig.load(j).feature_names().count("rsi_7") == 1
    with pytest.raises(Exception):
        FeatureConfig(volatility_windows=(1,))
    names = FeatureConfig().feature_names()
    assert len(names) == len(set(names)) == 31
    assert names[:2] == ["return_1", "return_5"] and names[-2:] == ["mid", "spread"]


def test_price_levels_beyond_the_ring(btc_trades):
    """Levels larger than every other window (deque bigger than the price ring), on real and flat/jumpy data."""
    cfg = FeatureConfig(price_levels=(2, 100, 700), volatility_windows=(3, 7), return_periods=(1,))
    prices, sizes = btc_trades
    assert_parity(prices[:4000], sizes[:4000], cfg, label="levels-real")
    for name in ("flat_stretches", "jumps", "ulp_wiggles"):
        p, q = _adversarial()[name]
        assert_parity(p, q, cfg, label=f"levels-{name}")


def test_mixed_batch_equals_one_event_per_batch(btc_trades):
    """Trades and quotes of a few symbols in one batch == the same events one per call (state included)."""
    prices, sizes = btc_trades
    rng = np.random.default_rng(7)
    n = 3000
    n_sym = 3
    sym = rng.integers(0, n_sym, n)
    kinds = (rng.random(n) < 0.3).astype(np.int8)  # 30% quotes
    x1 = np.where(kinds == 1, prices[:n] - 0.5, prices[:n]) * (1 + sym / 10)
    x2 = np.where(kinds == 1, prices[:n] + 0.5, sizes[:n])
    a, b = FeatureEngine(), FeatureEngine()
    rows_a = np.array([a.add_symbol(i) for i in range(n_sym)])
    rows_b = np.array([b.add_symbol(i) for i in range(n_sym)])
    kinds[:5] = 1  # quotes before any trade
    out_a = a.update(kinds, rows_a[sym], x1, x2)
    out_b = np.vstack([b.update(kinds[i:i + 1], rows_b[sym[i:i + 1]], x1[i:i + 1], x2[i:i + 1])
                       for i in range(n)])
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(a.state[:n_sym], b.state[:n_sym])
    # a non-contiguous out array is filled too
    wide = np.zeros((10, 2 * a.n_features))
    got = a.update_trades(np.zeros(10, dtype=np.int64), prices[n:n + 10], sizes[n:n + 10],
                          wide[:, ::2])
    np.testing.assert_array_equal(wide[:, ::2], got)
    np.testing.assert_array_equal(got, b.update_trades(np.zeros(10, dtype=np.int64), prices[n:n + 10],
                                                       sizes[n:n + 10]))


def test_fingerprint_names_the_state_layout_version():
    from streaming.kernels.config import STATE_LAYOUT_VERSION
    from streaming.kernels.layout import Layout

    fp = FeatureConfig().fingerprint()
    assert fp.startswith(f"layout{STATE_LAYOUT_VERSION}:") and STATE_LAYOUT_VERSION >= 3
    assert Layout(FeatureConfig()).version == STATE_LAYOUT_VERSION


@pytest.mark.parametrize("kind", ["steady", "growing", "exponential", "lognormal"])
def test_volume_sums_over_long_stretches_without_a_recompute(kind):
    # volume / price*volume running sums are recomputed only when the mass guard fires
    # (no periodic recompute): long stretches of similar sizes keep one running sum for
    # hundreds of windows, and must still match the reference at every row
    rng = np.random.default_rng(7)
    n = 60_000
    prices = 6e4 * np.exp(np.cumsum(2e-4 * rng.standard_normal(n)))
    t = np.arange(n, dtype=np.float64)
    sizes = {
        "steady": 1.0 + 1e-3 * rng.random(n),
        "growing": 1.0 + t * (1.0 + 0.01 * rng.random(n)),
        "exponential": np.exp(t * 1e-3) * (1.0 + 0.01 * rng.random(n)),
        "lognormal": np.exp(3.0 * rng.standard_normal(n)),
    }[kind]
    assert_parity(prices, sizes, label=kind)
