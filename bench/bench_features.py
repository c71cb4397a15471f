"""Benchmark of the features kernels (not a test).

    .venv/bin/python bench/bench_features.py [--ticks 1000000] [--symbols 10000]

Measures, in one run and on the same inputs (BTCUSDT trades from
tests/data, tiled with small per-symbol scaling):

* ns per tick for the full default feature set via FeatureEngine.update, in
  batches of 1, 100, 1,000 and 10,000 ticks, for one symbol and for many
  symbols interleaved at random (state far bigger than the CPU caches);
* baselines: (a) the pandas/numpy reference recomputed over the full history
  for each new tick, (b) talipp and river updated one value at a time for the
  features they have (RSI, rolling std, rolling min/max, EMA);
* state bytes per symbol; cold (empty Numba cache) and warm start.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streaming.kernels.config import FeatureConfig  # noqa: E402
from streaming.kernels.engine import FeatureEngine, compute  # noqa: E402
from streaming.kernels.reference import reference_features  # noqa: E402


def load_trades() -> tuple[np.ndarray, np.ndarray]:
    p, q = [], []
    with gzip.open(ROOT / "tests/data/spot_btcusdt_20240808.ndjson.gz", "rt") as f:
        for line in f:
            _, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame:
                d = json.loads(frame)["data"]
                p.append(float(d["p"]))
                q.append(float(d["q"]))
    return np.array(p), np.array(q)


def tiled(p, q, n):
    reps = -(-n // len(p))
    # continue the session with the same relative moves so the series stays realistic
    lr = np.diff(np.log(p))
    lrs = np.concatenate([lr] * reps)[: n - 1]
    prices = p[0] * np.exp(np.concatenate([[0.0], np.cumsum(lrs)]))
    sizes = np.concatenate([q] * reps)[:n]
    return prices, sizes


def bench_engine(prices, sizes, n_symbols, batch, max_ticks, rng):
    n = min(len(prices), max_ticks)
    eng = FeatureEngine(capacity=n_symbols)
    rows = np.array([eng.add_symbol(i) for i in range(n_symbols)], dtype=np.int64)
    sym = rng.integers(0, n_symbols, n) if n_symbols > 1 else np.zeros(n, dtype=np.int64)
    r = rows[sym]
    scale = 1.0 + sym / n_symbols
    p = prices[:n] * scale
    q = sizes[:n]
    kinds = np.zeros(n, dtype=np.int8)
    out = np.empty((max(batch, 1), eng.n_features))
    # warm up: compile/load, and fill the windows so steady state is measured
    w = min(n, 5 * batch, 20000)
    for lo in range(0, w, batch):
        eng.update(kinds[lo:lo + batch], r[lo:lo + batch], p[lo:lo + batch], q[lo:lo + batch],
                   out[: min(batch, w - lo)])
    gc.disable()
    t0 = time.perf_counter_ns()
    for lo in range(w, n, batch):
        hi = min(lo + batch, n)
        eng.update(kinds[lo:hi], r[lo:hi], p[lo:hi], q[lo:hi], out[: hi - lo])
    dt = time.perf_counter_ns() - t0
    gc.enable()
    return dt / (n - w), n - w


def bench_reference(prices, sizes, history, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        reference_features(prices[:history], sizes[:history])
        times.append(time.perf_counter_ns() - t0)
    return min(times)


def bench_talipp(prices, n):
    from talipp.indicators import EMA, RSI, StdDev

    inds = [RSI(5), RSI(14), RSI(21), StdDev(5), StdDev(21), StdDev(63), EMA(12), EMA(26)]
    x = prices[:n].tolist()
    t0 = time.perf_counter_ns()
    for v in x:
        for ind in inds:
            ind.add(v)
    return (time.perf_counter_ns() - t0) / n, [type(i).__name__ for i in inds]


def bench_river(prices, n):
    from river import stats, utils

    a12, a26 = 2 / 13, 2 / 27
    inds = [stats.RollingMin(10), stats.RollingMin(20), stats.RollingMin(50),
            stats.RollingMax(10), stats.RollingMax(20), stats.RollingMax(50),
            utils.Rolling(stats.Var, window_size=5, ddof=1), utils.Rolling(stats.Var, window_size=21, ddof=1),
            utils.Rolling(stats.Var, window_size=63, ddof=1),
            stats.EWMean(fading_factor=a12), stats.EWMean(fading_factor=a26)]
    x = prices[:n].tolist()
    t0 = time.perf_counter_ns()
    for v in x:
        for ind in inds:
            ind.update(v)
    return (time.perf_counter_ns() - t0) / n, ["RollingMin x3", "RollingMax x3", "Rolling(Var) x3", "EWMean x2"]


def start_times() -> tuple[float, float]:
    code = ("import time; t=time.perf_counter(); import numpy as np; "
            "from streaming.kernels.engine import compute; compute(np.arange(1.0, 100.0), np.ones(99)); "
            "print(time.perf_counter()-t)")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        res = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 check=True, cwd=ROOT)
            res.append(float(out.stdout.strip().splitlines()[-1]))
    return res[0], res[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=1_000_000, help="ticks per measurement (batched runs)")
    ap.add_argument("--symbols", type=int, default=10_000, help="symbols for the interleaved runs")
    ap.add_argument("--baseline-ticks", type=int, default=20_000, help="updates for talipp/river")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    p0, q0 = load_trades()
    prices, sizes = tiled(p0, q0, args.ticks)
    cfg = FeatureConfig()
    eng = FeatureEngine(cfg)
    print(f"# ticktide features benchmark\n")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {__import__('numba').__version__}, cpu: {platform.processor() or platform.machine()}, "
          f"cores visible: {os.cpu_count()}, single thread")
    print(f"input: {len(p0)} BTCUSDT trades (tests/data/spot_btcusdt_20240808.ndjson.gz), "
          f"tiled by log returns to {len(prices)} ticks")
    print(f"feature set: default FeatureConfig, {len(eng.names)} features")
    print(f"state per symbol: {eng.state_bytes_per_symbol} bytes "
          f"({args.symbols} symbols: {eng.state_bytes_per_symbol * args.symbols / 1e6:.1f} MB)\n")

    cold, warm = start_times()
    print(f"start (import + first batch, fresh process): cold {cold:.2f} s (empty Numba cache), "
          f"warm {warm:.2f} s (cache hit)\n")

    print("| batch | symbols | ns/tick | ticks timed |")
    print("|---:|---:|---:|---:|")
    kernel = {}
    for n_sym in dict.fromkeys((1, 100, args.symbols)):
        for batch in (1, 100, 1000, 10000):
            limit = 200_000 if batch == 1 else args.ticks
            ns, cnt = bench_engine(prices, sizes, n_sym, batch, limit, rng)
            kernel[(n_sym, batch)] = ns
            print(f"| {batch} | {n_sym} | {ns:.1f} | {cnt} |")
    print()

    ref_rows = []
    for hist in (1000, 10000):
        t = bench_reference(prices, sizes, hist, 3)
        ref_rows.append((hist, t))
    tl, tl_set = bench_talipp(prices, args.baseline_ticks)
    rv, rv_set = bench_river(prices, args.baseline_ticks)
    k1000 = kernel[(1, 1000)]
    kmany = kernel[(args.symbols, 1000)]
    print(f"kernel reference point: full default set, batch 1000: {k1000:.1f} ns/tick (1 symbol), "
          f"{kmany:.1f} ns/tick ({args.symbols} symbols)\n")
    print("| baseline | what | ns per update | ratio vs kernel (1 sym) | ratio vs kernel (many sym) |")
    print("|---|---|---:|---:|---:|")
    for hist, t in ref_rows:
        print(f"| pandas reference, full recompute per tick | all {len(eng.names)} features, history {hist} "
              f"| {t:.0f} | {t / k1000:.0f}x | {t / kmany:.0f}x |")
        print(f"| pandas reference, amortized per row | all features, history {hist} "
              f"| {t / hist:.0f} | {t / hist / k1000:.1f}x | {t / hist / kmany:.1f}x |")
    from importlib.metadata import version
    print(f"| talipp {version('talipp')}"
          f" one value at a time | {', '.join(tl_set)} ({len(tl_set)} of our features) "
          f"| {tl:.0f} | {tl / k1000:.0f}x | {tl / kmany:.0f}x |")
    import river
    print(f"| river {river.__version__} one value at a time | {', '.join(rv_set)} "
          f"| {rv:.0f} | {rv / k1000:.0f}x | {rv / kmany:.0f}x |")
    print(f"\nratios: baseline ns per update of its subset / kernel ns per tick for all {len(eng.names)} features.")
    # sanity: the benchmarked engine equals the reference on the benchmark input
    a = compute(prices[:5000], sizes[:5000])
    b = reference_features(prices[:5000], sizes[:5000]).to_numpy()
    ok = np.isnan(a) == np.isnan(b)
    m = ~np.isnan(b)
    rel = np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-3))
    print(f"check: null pattern equal: {bool(ok.all())}, max relative difference vs reference: {rel:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
