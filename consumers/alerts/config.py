"""Alerts consumer configuration (TOML, flat or under ``[alerts]``)::

    dedup_window_s = 300          # same source/type/symbol/limit/component within this (event time): dropped
    min_severity = "warning"      # default for destinations: info < warning < critical

    [retry]                       # per destination, exponential backoff
    attempts = 5
    base_delay_s = 0.5
    max_delay_s = 30.0
    timeout_s = 10.0

    [[destinations]]
    name = "slack"
    kind = "webhook"              # POST a Slack-compatible JSON body
    url = "https://hooks.slack.com/services/..."
    max_per_window = 20           # rate limit: at most this many messages ...
    window_s = 60                 # ... per this many seconds

    [[destinations]]
    name = "oncall-mail"
    kind = "email"                # SMTP (smtplib, in a thread)
    host = "localhost"
    port = 25
    sender = "ticktide@example.com"
    to = ["oncall@example.com"]
    starttls = false
    username = ""                 # login when set; the password is read from password_env
    password_env = "TICKTIDE_SMTP_PASSWORD"
    min_severity = "critical"

    [health]                      # health.v1 monitoring
    missing_after_s = 35          # a component silent this long -> component_missing
    error_rate = 0.10             # error_rate above this -> error_rate alert
    stale_after_s = 60            # a feed whose events_out stops growing this long -> stale_feed
    feeds = ["producer*", "feed*", "replay*"]   # fnmatch patterns of feed components
    notify_resolved = true        # <type>_resolved alerts when a condition clears
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import msgspec

from streaming.config import TomlConfig

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class RetryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based): base * 2**(attempt-1), capped."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


class DestinationConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    kind: Literal["webhook", "email"]
    url: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    host: str = "localhost"
    port: int = 25
    sender: str = "ticktide@localhost"
    to: list[str] = msgspec.field(default_factory=list)
    starttls: bool = False
    username: str = ""
    password_env: str = "TICKTIDE_SMTP_PASSWORD"
    min_severity: Severity | None = None
    max_per_window: int = 20
    window_s: float = 60.0
    enabled: bool = True


class HealthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    missing_after_s: float = 35.0
    error_rate: float = 0.10
    stale_after_s: float = 60.0
    feeds: list[str] = msgspec.field(default_factory=lambda: ["producer*", "feed*", "replay*"])
    notify_resolved: bool = True  # a <type>_resolved alert when a health condition clears


class AlertsConfig(TomlConfig, kw_only=True, forbid_unknown_fields=True):
    toml_section = "alerts"

    dedup_window_s: float = 300.0
    min_severity: Severity = "warning"
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    destinations: list[DestinationConfig] = msgspec.field(default_factory=list)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "AlertsConfig":
        cfg = super().from_mapping(data)
        names = [d.name for d in cfg.destinations]
        if len(set(names)) != len(names):
            raise ValueError(f"destination names must be unique: {names}")
        return cfg
