"""``ticktide alerts-send --config FILE``: send one test alert to every configured destination."""

from __future__ import annotations

import argparse
import sys
import time

from consumers.alerts.config import AlertsConfig
from consumers.alerts.processor import AlertsProcessor
from schemas.events import Alert


def cmd_alerts_send(args: argparse.Namespace) -> int:
    config = AlertsConfig.load(args.config)
    if not config.destinations:
        print("ticktide alerts-send: the config has no destinations", file=sys.stderr)
        return 2
    proc = AlertsProcessor(config)
    now = time.time_ns()
    alert = Alert(alert_id=f"test:{now}", source="cli", type="test", severity=args.severity,
                  message=args.message, ts_event=now, ts_proc=now)
    proc.route(alert, now)
    proc.dispatcher.wait_idle(args.timeout)
    proc.close()
    for dest, alert_id in proc.dispatcher.delivered:
        print(f"delivered {alert_id} to {dest}")
    for dest, alert_id in proc.dispatcher.failed:
        print(f"FAILED {alert_id} to {dest}", file=sys.stderr)
    return 1 if proc.dispatcher.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts-send", help="send a test alert to the destinations of an alerts config")
    p.add_argument("--config", required=True, help="alerts config (TOML)")
    p.add_argument("--message", default="ticktide test alert", help="alert text")
    p.add_argument("--severity", default="critical", choices=["info", "warning", "critical"])
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for delivery")
    p.set_defaults(func=cmd_alerts_send)
