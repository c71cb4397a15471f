"""Event contracts shared by every ticktide process: Structs and the topic catalogue."""

from schemas.events import (  # noqa: F401
    EVENT_TYPES, Alert, Bar, DeadLetter, FeatureVector, Fill, Health, Order,
    RebalanceReport, RiskUpdate, Signal, StressRequest, StressResult, TargetPortfolio, Tick,
)
from schemas.topics import CATALOGUE, Topic, topic  # noqa: F401
