"""Declarative, stateful tick validation (pure: no I/O, no metrics library).

- ``rules``: the TOML rules model (conditions, actions, severities), the
  compiled per-tick checks (the reference semantics), per-symbol state and
  the result types;
- ``validator``: :class:`Validator`, tick by tick (``validate``) and in
  batches (``validate_many``, ``column_prefix``);
- ``vector``: the accelerated twin of the rules for batches (numpy over
  columns), kept equal to the reference by parity tests;
- ``feed``: the connection manager's view of a validator;
- ``default.toml``: the default rules, documenting the format.
"""

from producers.validation.rules import (
    KINDS, OPERATORS, SEVERITIES, TICK_FIELDS, VIRTUAL_FIELDS, Flag, RuleError, SymbolQuality, Verdict,
)
from producers.validation.validator import DEFAULT_RULES, Validator

__all__ = [
    "DEFAULT_RULES", "KINDS", "OPERATORS", "SEVERITIES", "TICK_FIELDS", "VIRTUAL_FIELDS",
    "Flag", "RuleError", "SymbolQuality", "Validator", "Verdict",
]
