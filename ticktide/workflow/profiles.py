"""The API document's workflow config: risk profiles, rebalancing frequency, its key names. Pure.

``resolve(data)`` turns a workflow config as the document writes it into the
tables ``WorkflowConfig`` reads (``workflow``, ``portfolio``, ``execution``,
``risk``, ``features``, ``alerts``):

1. ``risk_profile`` (``conservative`` | ``moderate`` | ``aggressive``) starts
   from that preset (``PROFILES``);
2. the document's keys (``ALIASES``) are set on the setting each names, over
   the preset;
3. the explicit tables go on top, key by key, so an explicit key always wins
   over the preset. An alias and the explicit key it names (or two aliases of
   one setting), given with different values, is an error: which was meant?

Errors are ``ValueError`` naming the key and what it accepts.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from consumers.portfolio.rebalance import FREQUENCIES

# Every preset sets the same keys, so switching profile never leaves one from another.
# The pre-trade cap (execution.max_position_weight) sits 0.10 above the optimizer's
# max_weight, as the defaults do, so a target at the optimizer's cap is never rejected.
PROFILES: dict[str, dict[str, Any]] = {
    "conservative": {
        "portfolio": {"objective": "min_variance", "target_volatility": 0.10,
                      "constraints": {"max_weight": 0.20, "max_volatility": None, "min_positions": None,
                                      "max_positions": None}},
        "execution": {"max_position_weight": 0.30},
        "risk": {"limits": {"max_position": 0.20, "max_volatility": 0.15, "max_drawdown": 0.10}},
    },
    "moderate": {
        "portfolio": {"objective": "max_sharpe", "target_volatility": 0.15,
                      "constraints": {"max_weight": 0.30, "max_volatility": 0.20, "min_positions": None,
                                      "max_positions": None}},
        "execution": {"max_position_weight": 0.40},
        "risk": {"limits": {"max_position": 0.30, "max_volatility": 0.25, "max_drawdown": 0.20}},
    },
    "aggressive": {
        "portfolio": {"objective": "max_return", "target_volatility": 0.30,
                      "constraints": {"max_weight": 0.50, "max_volatility": None, "min_positions": None,
                                      "max_positions": 8}},
        "execution": {"max_position_weight": 0.60},
        "risk": {"limits": {"max_position": 0.50, "max_volatility": 0.40, "max_drawdown": 0.35}},
    },
}

# document key -> the ticktide setting it sets (table path); README "The API document's config keys"
ALIASES: dict[str, tuple[str, ...]] = {
    "rebalancing_frequency": ("portfolio", "schedule", "frequency"),
    "rebalancing_schedule": ("portfolio", "schedule", "frequency"),
    "performance_threshold": ("portfolio", "triggers", "performance"),
    "risk_limits.max_position_size": ("risk", "limits", "max_position"),
    "risk_limits.max_portfolio_volatility": ("risk", "limits", "max_volatility"),
    "risk_limits.max_drawdown": ("risk", "limits", "max_drawdown"),
    "trading.max_trades_per_day": ("execution", "max_trades_per_day"),
    "trading.paper_trading": (),  # true is what ticktide does; false is refused
    "notifications.webhook_url": ("alerts", "destinations"),
}
GROUPS = ("risk_limits", "trading", "notifications")
DOCUMENT_KEYS = ("risk_profile", "rebalancing_frequency", "rebalancing_schedule", "performance_threshold", *GROUPS)
NUMBERS = {"performance_threshold", "risk_limits.max_position_size", "risk_limits.max_portfolio_volatility",
           "risk_limits.max_drawdown"}
# the document's notifications table also has email and slack switches; off is accepted as is
NOTIFICATION_SWITCHES = ("email", "slack")


def _fail(key: str, what: str) -> ValueError:
    return ValueError(f"{key}: {what}")


def _flatten(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``data`` into (the document's keys by dotted name, everything else)."""
    found: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in data.items():
        if key in GROUPS:
            if not isinstance(value, Mapping):
                raise _fail(key, f"must be a table of {', '.join(_members(key))}")
            for sub, v in value.items():
                name = f"{key}.{sub}"
                if key == "notifications" and sub in NOTIFICATION_SWITCHES:
                    _switch_off(name, v)
                    continue
                if name not in ALIASES:
                    raise _fail(name, f"unknown key; {key} takes {', '.join(_members(key))}")
                found[name] = v
        elif key in ALIASES or key == "risk_profile":
            found[key] = value
        else:
            rest[key] = value
    return found, rest


def _members(group: str) -> list[str]:
    names = [k.split(".", 1)[1] for k in ALIASES if k.startswith(group + ".")]
    return names + (list(NOTIFICATION_SWITCHES) if group == "notifications" else [])


def _switch_off(name: str, value: Any) -> None:
    if value is False or value is None:
        return
    raise _fail(name, "workflow notifications go to a webhook only: set notifications.webhook_url "
                      "(or [[alerts.destinations]] for email), and leave this off")


def _set(tables: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tables
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _get(tables: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = tables
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, tables merged key by key (other values replaced)."""
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _alias_value(name: str, value: Any) -> Any:
    if name in ("rebalancing_frequency", "rebalancing_schedule"):
        if value not in FREQUENCIES:
            raise _fail(name, f"{value!r} is not one of {', '.join(FREQUENCIES)}")
        return value
    if name in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise _fail(name, f"{value!r} is not a positive number (a fraction: 0.05 = 5 %)")
        return float(value)
    if name == "trading.max_trades_per_day":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(name, f"{value!r} is not a whole number of at least 1")
        return value
    if name == "trading.paper_trading":
        if value is True:
            return value
        if value is False:
            raise _fail(name, "false is not supported: ticktide has only the paper broker (simulated fills, "
                              "no real orders); set it to true or leave it out")
        raise _fail(name, f"{value!r} is not true or false")
    if name == "notifications.webhook_url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise _fail(name, f"{value!r} is not an http(s) URL")
        return [{"name": "webhook", "kind": "webhook", "url": value}]
    raise AssertionError(name)


def resolve(data: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow config tables for ``data`` (which may use the document's keys)."""
    found, explicit = _flatten(data)
    tables: dict[str, Any] = {}
    profile = found.pop("risk_profile", None)
    if profile is not None:
        if profile not in PROFILES:
            raise _fail("risk_profile", f"{profile!r} is not one of {', '.join(PROFILES)}")
        tables = copy.deepcopy(PROFILES[profile])
    aliased: dict[tuple[str, ...], tuple[str, Any]] = {}
    for name, value in found.items():
        path, value = ALIASES[name], _alias_value(name, value)
        if not path:
            continue
        if path in aliased and aliased[path][1] != value:
            raise _fail(name, f"{value!r} contradicts {aliased[path][0]} = {aliased[path][1]!r}; give one")
        given, current = _get(explicit, path)
        if given and current != value:
            raise _fail(name, f"{value!r} contradicts {'.'.join(path)} = {current!r} in the same config; give one")
        aliased[path] = (name, value)
        _set(tables, path, value)
    return _merge(tables, explicit)


def profile_numbers(name: str) -> dict[str, Any]:
    """The flattened ``table.key -> value`` settings of one preset (for the README table and tests)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(f"{prefix}{key}.", value)
            else:
                out[f"{prefix}{key}"] = value

    walk("", PROFILES[name])
    return out


def json_schema() -> dict[str, dict[str, Any]]:
    """The document's keys as JSON Schema properties of the REST ``config`` object (OpenAPI)."""
    fraction = {"type": "number", "minimum": 0, "exclusiveMinimum": True}  # OpenAPI 3.0 spelling
    return {
        "risk_profile": {"type": "string", "enum": list(PROFILES),
                         "description": "a preset of optimizer constraints and risk limits; explicit keys override"},
        "rebalancing_frequency": {"type": "string", "enum": list(FREQUENCIES),
                                  "description": "portfolio.schedule.frequency"},
        "rebalancing_schedule": {"type": "string", "enum": list(FREQUENCIES),
                                 "description": "portfolio.schedule.frequency"},
        "performance_threshold": {**fraction, "description": "portfolio.triggers.performance"},
        "risk_limits": {"type": "object", "additionalProperties": False, "properties": {
            "max_position_size": {**fraction, "description": "risk.limits.max_position"},
            "max_portfolio_volatility": {**fraction, "description": "risk.limits.max_volatility"},
            "max_drawdown": {**fraction, "description": "risk.limits.max_drawdown"}}},
        "trading": {"type": "object", "additionalProperties": False, "properties": {
            "paper_trading": {"type": "boolean", "enum": [True], "description": "only the paper broker exists"},
            "max_trades_per_day": {"type": "integer", "minimum": 1,
                                   "description": "execution.max_trades_per_day"}}},
        "notifications": {"type": "object", "additionalProperties": False, "properties": {
            "webhook_url": {"type": "string", "pattern": "^https?://",
                            "description": "a webhook alert destination: the run's alerts are posted there"},
            "email": {"type": "boolean", "enum": [False]},
            "slack": {"type": "boolean", "enum": [False]}}},
    }
