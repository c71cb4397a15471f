"""Risk consumer: fills/ticks/features/targets -> risk.v1 and limit alerts on alerts.v1.

- ``metrics``: pure risk metrics (empyrical conventions) and the risk level;
- ``stress``: market crash, volatility spike, liquidity crisis scenarios;
- ``portfolio``: positions, cash, marks, sampled equity;
- ``report``: RiskUpdate assembly and limit checks (shared by CLI and consumer);
- ``limits``: breach episodes with hysteresis -> limit_breach / limit_resolved alerts (pure);
- ``processor``: the streaming adapter (``ticktide consume risk``);
- ``commands``: ``ticktide risk --prices FILE --weights FILE``.
"""

from __future__ import annotations


def create_processor(config_path: str | None = None):
    """What ``ticktide consume risk`` runs (imported here: the CLI starts without the heavy deps)."""
    from consumers.risk.config import RiskConfig
    from consumers.risk.processor import RiskProcessor

    return RiskProcessor(RiskConfig.load(config_path))
