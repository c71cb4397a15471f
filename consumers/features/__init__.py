"""The features consumer: ticks.v1 / bars.v1 -> rolling features -> features.v1."""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume features`` runs; ``config_path`` is a FeatureConfig TOML/JSON file."""
    from consumers.features.processor import FeaturesProcessor
    from streaming.kernels.config import FeatureConfig

    return FeaturesProcessor(FeatureConfig.load(config_path) if config_path else None)


def __getattr__(attr: str):
    if attr == "FeaturesProcessor":
        from consumers.features.processor import FeaturesProcessor

        return FeaturesProcessor
    raise AttributeError(attr)
