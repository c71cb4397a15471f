"""The gateway's adapter to the historical workflow (``ticktide.workflow``).

``run_historical_workflow(request, progress_cb) -> results`` is the
``RunWorkflow`` the REST jobs call: the same steps as ``ticktide workflow
run`` (config, prices, warm-up selection, the four live processors replayed on
a private embedded bus, results), with progress reported per replayed day and
no files written. The request's ``config`` object has the TOML config's
tables (``workflow``, ``portfolio``, ``execution``, ``risk``, ``features``,
``alerts``) and/or the API document's keys (``risk_profile``,
``rebalancing_frequency``, ...: ``ticktide.workflow.profiles``); never
``history``: where prices are fetched from is the gateway's setting
(``--history-sources``/``--history-config``), not a client's. A request without
a prices file fetches its symbols first (stage ``fetching``, then
``replaying``; the status shows each symbol's source).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from typing import Any, Callable

from ticktide.gateway.rest import WorkflowRequest


def _toml_value(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"config.{path}: {value} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, f"{path}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v, f'{path}.{k}')}"
                               for k, v in value.items()) + "}"
    if value is None:
        raise ValueError(f"config.{path}: null is not allowed (leave the key out for its default)")
    raise ValueError(f"config.{path}: unsupported value of type {type(value).__name__}")


def config_to_toml(config: dict[str, Any]) -> str:
    """The JSON config object as TOML text ``WorkflowConfig.load`` reads (one inline table per key)."""
    return "".join(f"{json.dumps(str(k))} = {_toml_value(v, str(k))}\n" for k, v in config.items())


def load_config(config: dict[str, Any]):
    """A ``WorkflowConfig`` from a JSON object; ValueError saying what is wrong."""
    from ticktide.workflow.run import WorkflowConfig

    if "history" in config:
        raise ValueError("config.history: not accepted over REST (the gateway's --history-config sets the sources)")

    fd, path = tempfile.mkstemp(prefix="ticktide-gateway-", suffix=".toml")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(config_to_toml(config))
        try:
            return WorkflowConfig.load(path)
        except Exception as exc:  # noqa: BLE001 - msgspec/TOML errors become a 422 message
            raise ValueError(f"config: {exc}") from None
    finally:
        os.unlink(path)


def check_config(config: dict[str, Any]) -> None:
    load_config(config)


def known_symbols(prices: str) -> frozenset[str]:
    from ticktide.workflow.data import load_prices

    return frozenset(str(c) for c in load_prices(prices).close.columns)


class _ProgressAdapter:
    """Looks like ``ticktide.workflow.pipeline.Progress``; forwards the fraction of days done."""

    def __init__(self, total: int, callback: Callable[[float], None]) -> None:
        self.total, self.callback = max(total, 1), callback

    def update(self, done: int, label: str = "") -> None:
        # the last few percent are results: 1.0 is set when the job completes
        self.callback(0.95 * done / self.total)


def run_historical_workflow(request: WorkflowRequest, progress_cb: Callable[[float], None]) -> dict:
    from ticktide.workflow import run as wf

    cfg = load_config(request.config)
    symbols = list(request.symbols)
    start, end = request.start_date.isoformat(), request.end_date.isoformat()
    stage = getattr(progress_cb, "stage", None) or (lambda name, sources=None: None)
    fetch = None
    if not request.prices:
        from producers.history import HistoryConfig

        history = request.history or {}
        cfg.history = HistoryConfig.from_mapping(history.get("config"))
        fetch = {"cache_dir": history.get("cache_dir"), "sources": history.get("sources")}
        stage("fetching")
    data, symbols, data_info, warmup = wf.load_data(request.prices or None, symbols, start, end, cfg, fetch)
    stage("replaying", data_info.get("sources"))
    close, first_day = wf.select(data, symbols, start, end, warmup)
    close = wf.with_benchmark(data, close, cfg.risk.benchmark)  # a [risk]/[workflow] benchmark is replayed too
    processors = wf.build_processors(cfg, symbols, first_day, job_id=request.job_id or None)
    progress_cb(0.0)
    out = asyncio.run(wf.replay(data, close, processors, "memory://", _ProgressAdapter(len(close), progress_cb)))
    results, _series = wf.build_results(out, close, symbols, first_day, start, end, cfg)
    results["data"] = data_info
    stage("done")
    return results
