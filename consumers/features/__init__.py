"""The features consumer: ticks.v1 / bars.v1 -> rolling features -> features.v1."""

from consumers.features.processor import FeaturesProcessor

__all__ = ["FeaturesProcessor"]


def create_processor(config_path: str | None = None) -> FeaturesProcessor:
    """What ``ticktide consume features`` runs; ``config_path`` is a FeatureConfig TOML/JSON file."""
    from streaming.kernels.config import FeatureConfig

    return FeaturesProcessor(FeatureConfig.load(config_path) if config_path else None)
