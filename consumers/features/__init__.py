"""The features consumer: ticks.v1 / bars.v1 -> rolling features -> features.v1."""

from consumers.features.processor import FeaturesProcessor

__all__ = ["FeaturesProcessor"]
