"""``ticktide alerts-send --config FILE``: send one test alert to every configured destination."""

from __future__ import annotations

import argparse
import sys
import time

import msgspec

from consumers.alerts.config import AlertsConfig
from schemas.events import Alert
from streaming.commandline import CommandError, add_config_option
from streaming.config import config_error


def cmd_alerts_send(args: argparse.Namespace) -> int:
    try:
        config = AlertsConfig.load(args.config)
    except (ValueError, TypeError, msgspec.MsgspecError) as exc:
        raise CommandError(config_error(args.config, exc), "fix the file") from None
    if not config.destinations:
        print("ticktide alerts-send: the config has no destinations (add a [[destinations]] table)",
              file=sys.stderr)
        return 2
    from consumers.alerts.processor import AlertsProcessor  # aiohttp and friends: only when sending

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
    p = sub.add_parser("alerts-send", help="send a test alert to the destinations of an alerts config",
                       description="Send one test alert to every destination of an alerts config (the one "
                                   "`ticktide consume alerts --config` uses) and report which deliveries worked.")
    add_config_option(p, "alerts config (TOML)", required=True)
    p.add_argument("--message", default="ticktide test alert", help="alert text")
    p.add_argument("--severity", default="critical", choices=["info", "warning", "critical"],
                   help="severity of the test alert: info, warning or critical")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for delivery")
    p.set_defaults(func=cmd_alerts_send)
