"""Alerts consumer: alerts.v1 -> Slack-compatible webhooks and email; health.v1 monitoring.

- ``policy``: deduplication and per-destination rate limiting (pure);
- ``health``: missing components, error rate > 10 %, stale feeds (pure);
- ``delivery``: webhook (aiohttp) and SMTP (smtplib in a thread) with retries;
- ``processor``: the streaming adapter (``ticktide consume alerts``);
- ``commands``: ``ticktide alerts-send`` to test a configuration.
"""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume alerts`` runs (imported here: the CLI starts without the heavy deps)."""
    from consumers.alerts.config import AlertsConfig
    from consumers.alerts.processor import AlertsProcessor

    return AlertsProcessor(AlertsConfig.load(config_path))
