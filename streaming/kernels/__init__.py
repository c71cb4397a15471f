"""Numba rolling kernels (pure functions on arrays, no I/O) and their configuration."""

from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import FeatureEngine, compute
from streaming.kernels.layout import KIND_PRICE, KIND_QUOTE, Layout

__all__ = ["FeatureConfig", "FeatureEngine", "Layout", "compute", "KIND_PRICE", "KIND_QUOTE"]
