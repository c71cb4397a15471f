"""The strategy plug-in interface.

A strategy is a plain Python function or class over a :class:`FeatureVector`,
named in the config by import path and loaded at start-up::

    [[plugins]]
    path = "examples.strategies.mean_reversion:MeanReversion"   # or a function
    name = "mean_reversion"        # signal type (optional)
    cooldown_s = 600               # per-symbol cooldown in event time (optional)
    params = { window = 21, threshold = 2.0 }   # keyword arguments of a class

The contract:

- **Function**: ``def my_strategy(fv: FeatureVector, state: dict) -> SignalHit | list[SignalHit] | None``.
  ``state`` is optional in the signature (``def my_strategy(fv)`` works too).
- **Class**: instantiated once with ``**params``; the instance is called like
  the function (``__call__(fv, state)`` or ``evaluate(fv, state)``).
- ``state`` is a per-symbol, per-strategy ``dict`` owned by the engine: keep
  whatever the strategy needs between vectors there (JSON-able values only:
  numbers, strings, None, lists, dicts). It is snapshotted with the consumer's
  state and restored after a restart or rebalance, so plug-ins get the same
  exactly-once-looking behaviour as the built-in rules. Do not keep per-symbol
  state on ``self``: one instance serves every symbol and partition.
- Return ``None`` (nothing to say), one :class:`SignalHit` or several. A hit's
  ``type`` defaults to the plug-in name. Cooldown and ``signal_id`` are applied
  by the engine, exactly as for built-in rules.
- Exceptions are logged and counted (``ticktide_signal_plugin_errors_total``);
  they never stop the stream or suppress the built-in rules.
- Strategies must be deterministic functions of their inputs (no wall clock,
  no randomness) so the offline CLI and the live consumer agree.

See ``examples/strategies/mean_reversion.py``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal

from schemas.events import FeatureVector
from streaming.loader import import_object  # noqa: F401 - re-exported: plug-in paths resolve there

Action = Literal["review", "consider_trade", "buy", "sell"]
Urgency = Literal["low", "medium", "high"]
ACTIONS = ("review", "consider_trade", "buy", "sell")
URGENCIES = ("low", "medium", "high")


@dataclass
class SignalHit:
    """What a rule or strategy says about one FeatureVector."""

    action: Action
    urgency: Urgency
    strength: float
    reason: str
    features: dict[str, float | None] = field(default_factory=dict)  # the values that triggered it
    type: str | None = None  # defaults to the rule/plug-in name

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r} is not one of {ACTIONS}")
        if self.urgency not in URGENCIES:
            raise ValueError(f"urgency {self.urgency!r} is not one of {URGENCIES}")
        self.strength = float(self.strength)


@dataclass
class Plugin:
    """A loaded strategy: a callable ``(fv, state) -> hits`` with its name and cooldown."""

    name: str
    func: Callable[[FeatureVector, dict], Any]
    cooldown_s: float | None = None

    def evaluate(self, fv: FeatureVector, state: dict) -> list[SignalHit]:
        return as_hits(self.func(fv, state))


def as_hits(result: Any) -> list[SignalHit]:
    if result is None:
        return []
    if isinstance(result, SignalHit):
        return [result]
    if isinstance(result, dict):
        return [SignalHit(**result)]
    if isinstance(result, Iterable):
        hits: list[SignalHit] = []
        for item in result:
            hits.extend(as_hits(item))
        return hits
    raise TypeError(f"a strategy must return SignalHit, a list of them or None, not {type(result).__name__}")


def _accepts_state(func: Callable) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def make_plugin(obj: Any, name: str | None = None, params: dict | None = None,
                cooldown_s: float | None = None) -> Plugin:
    """Wrap a function, a class (instantiated with ``params``) or an instance as a Plugin."""
    params = params or {}
    if inspect.isclass(obj):
        instance = obj(**params)
    else:
        if params:
            raise ValueError(f"params given for {obj!r}, which is not a class")
        instance = obj
    call = getattr(instance, "evaluate", None) if not inspect.isfunction(instance) else None
    if call is None:
        call = instance
    if not callable(call):
        raise TypeError(f"strategy {obj!r} is not callable and has no evaluate()")
    plugin_name = name or getattr(instance, "name", None) or getattr(obj, "__name__", None) or type(instance).__name__
    if _accepts_state(call):
        func = call
    else:
        def func(fv: FeatureVector, state: dict, _call=call) -> Any:
            return _call(fv)
    return Plugin(name=str(plugin_name), func=func, cooldown_s=cooldown_s)


def load_plugins(configs: Iterable) -> list[Plugin]:
    """Load the enabled ``[[plugins]]`` of a SignalsConfig."""
    plugins = []
    for cfg in configs:
        if not cfg.enabled:
            continue
        plugins.append(make_plugin(import_object(cfg.path), cfg.name, cfg.params, cfg.cooldown_s))
    names = [p.name for p in plugins]
    if len(set(names)) != len(names):
        raise ValueError(f"plug-in names must be unique: {names}")
    return plugins
