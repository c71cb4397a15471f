"""Settings of the history sources: the ``[history]`` table of a TOML config, then the environment.

A value set in the config wins; otherwise ``TICKTIDE_YAHOO_URL``,
``TICKTIDE_ALPHAVANTAGE_URL``, ``TICKTIDE_STOOQ_URL``,
``TICKTIDE_BINANCE_REST_URL`` and ``ALPHAVANTAGE_API_KEY`` apply, then the
public endpoints.
"""

from __future__ import annotations

import os

import msgspec

from producers.history import alphavantage, binance, stooq, yahoo

SOURCES = ("yahoo", "alphavantage", "stooq", "binance")
ENV_URLS = {"yahoo": "TICKTIDE_YAHOO_URL", "alphavantage": "TICKTIDE_ALPHAVANTAGE_URL",
            "stooq": "TICKTIDE_STOOQ_URL", "binance": "TICKTIDE_BINANCE_REST_URL"}
DEFAULT_URLS = {"yahoo": yahoo.DEFAULT_URL, "alphavantage": alphavantage.DEFAULT_URL,
                "stooq": stooq.DEFAULT_URL, "binance": binance.DEFAULT_URL}


class QualitySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    completeness: float | None = None  # default: the rules file's quality_thresholds (0.95)
    accuracy: float | None = None  # default: the rules file's quality_thresholds (0.90)
    on_breach: str = "warn"  # "warn": keep the symbol with a warning; "drop": leave it out

    def __post_init__(self) -> None:
        if self.on_breach not in ("warn", "drop"):
            raise ValueError(f"history.quality.on_breach must be 'warn' or 'drop', not {self.on_breach!r}")
        for name in ("completeness", "accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"history.quality.{name} must be between 0 and 1")


class HistoryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sources: list[str] | None = None  # the chain for every symbol; default: per symbol (see chain.default_chain)
    yahoo_url: str | None = None
    alphavantage_url: str | None = None
    stooq_url: str | None = None
    binance_rest_url: str | None = None
    alphavantage_api_key: str | None = None
    alphavantage_function: str = "TIME_SERIES_DAILY_ADJUSTED"
    alphavantage_calls_per_minute: float = 5.0
    timeout_s: float = 20.0
    user_agent: str | None = None  # default producers.history.base.USER_AGENT
    retries: int = 3
    backoff_s: float = 0.5
    cache_dir: str | None = None
    min_coverage: float = 0.9  # a source's rows / the rows the range should hold, below which it failed
    concurrency: int = 4  # symbols fetched at once
    rules: str | None = None  # preprocessing rules TOML (default producers/history/rules/default.toml)
    quality: QualitySettings = msgspec.field(default_factory=QualitySettings)

    def __post_init__(self) -> None:
        for s in self.sources or ():
            if s not in SOURCES:
                raise ValueError(f"history.sources: unknown source {s!r} (sources: {', '.join(SOURCES)})")

    def url(self, source: str) -> str:
        return getattr(self, f"{source}_url" if source != "binance" else "binance_rest_url") \
            or os.environ.get(ENV_URLS[source]) or DEFAULT_URLS[source]

    def api_key(self) -> str | None:
        return self.alphavantage_api_key or os.environ.get("ALPHAVANTAGE_API_KEY") or None

    @classmethod
    def from_mapping(cls, data: dict | None) -> "HistoryConfig":
        return msgspec.convert(dict(data or {}), cls)


def parse_sources(text: str | None) -> list[str] | None:
    """``--sources yahoo,stooq`` as a list; ValueError naming an unknown source."""
    if not text:
        return None
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SOURCES]
    if bad:
        raise ValueError(f"unknown source {', '.join(bad)} (sources: {', '.join(SOURCES)})")
    return names
