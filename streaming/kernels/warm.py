"""Compile the Numba kernels, or load them from Numba's on-disk cache.

``python -m streaming.kernels.warm`` (run by ``make install``) fills the cache
so that the first ``ticktide consume features`` loads the kernels in well
under a second instead of compiling them for tens of seconds.
"""

from __future__ import annotations

import time

import numpy as np

from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import FeatureEngine
from streaming.kernels.layout import KIND_PRICE, KIND_QUOTE


def warm(config: FeatureConfig | None = None) -> float:
    """Run the batch kernel once on a scratch engine (a trade and a quote); returns the seconds."""
    t0 = time.perf_counter()
    scratch = FeatureEngine(config, capacity=1)
    row = scratch.add_symbol("warm-up")
    scratch.update(np.array([KIND_PRICE, KIND_QUOTE], dtype=np.int8), np.array([row, row], dtype=np.int64),
                   np.array([1.0, 1.0]), np.array([1.0, 1.1]))
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"Numba kernels ready in {warm():.2f}s")
