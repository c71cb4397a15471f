"""Helpers for the operations tests: the Prometheus/promtool binaries, a
Prometheus started on loopback, the fast variant of the alert rules, and the
metric names the code base exports.

The binaries come from Debian's ``prometheus`` package (scripts/run-tests
installs it). When they are missing the tests fail with the install line;
they never skip.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

try:
    import yaml
except ModuleNotFoundError as exc:  # pragma: no cover - a setup error, not a skip
    raise ImportError("tests/ops need PyYAML: add 'pyyaml>=6' to the dev extra in pyproject.toml") from exc

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULES_FILE = PROM_DIR / "rules" / "ticktide.rules.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "ticktide.json"
COMPOSE = ROOT / "docker-compose.yml"

INSTALL_HINT = ("install Debian's prometheus package (it ships promtool): "
                "apt-get install -y prometheus  -- scripts/run-tests does this")


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH; fails the test (never skips) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH; {INSTALL_HINT}", pytrace=False)
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require_binary("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- durations and the fast rules variant ---------------------------------------------
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DUR = r"(?:\d+(?:ms|s|m|h|d|w|y))+"
_RANGE = re.compile(rf"\[\s*({_DUR})\s*(?::\s*({_DUR})?\s*)?\]")


def parse_duration(text: str) -> float:
    text = str(text).strip()
    if not re.fullmatch(_DUR, text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text))


def _fmt(seconds: float) -> str:
    return f"{max(1, int(math.ceil(seconds)))}s"


def fast_rules(text: str, factor: float = 12.0, min_range_s: float = 4.0, min_for_s: float = 1.0) -> dict:
    """The rules file with every range window and ``for:`` divided by ``factor``.

    With a 1 s scrape and evaluation interval, a 2 m window becomes 10 s and
    ``for: 1m`` becomes 5 s, so a live test sees an alert fire within seconds
    while the expressions stay exactly the deployed ones.
    """
    doc = yaml.safe_load(text)

    def shrink_range(m: re.Match) -> str:
        rng = _fmt(max(min_range_s, parse_duration(m.group(1)) / factor))
        if m.group(0).find(":") < 0:
            return f"[{rng}]"
        res = m.group(2)
        return f"[{rng}:{_fmt(max(1.0, parse_duration(res) / factor)) if res else ''}]"

    for group in doc.get("groups", []):
        if "interval" in group:
            group["interval"] = "1s"
        for rule in group.get("rules", []):
            rule["expr"] = _RANGE.sub(shrink_range, str(rule["expr"]))
            if "for" in rule:
                d = parse_duration(rule["for"])
                rule["for"] = "0s" if d == 0 else _fmt(max(min_for_s, d / factor))
    return doc


def range_windows(expr: str) -> list[float]:
    return [parse_duration(m.group(1)) for m in _RANGE.finditer(expr)]


def load_rules() -> list[dict]:
    doc = yaml.safe_load(RULES_FILE.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


# -- metric names -------------------------------------------------------------------
_PACKAGES = ("ticktide", "streaming", "producers", "consumers")


def exported_metrics() -> dict[str, set[str]]:
    """Every metric family the code registers (importing every module), with its label names.

    Keys are the sample names a query can use: ``x_total``, ``x_bucket``,
    ``x_count``, ``x_sum`` as prometheus_client exposes them.
    """
    from prometheus_client import REGISTRY

    for pkg_name in _PACKAGES:
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + ".", onerror=lambda _name: None):
            if info.name.endswith(".__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: BLE001 - a module still being written must not hide the others
                continue
    names: dict[str, set[str]] = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001
        try:
            families = collector.describe() or collector.collect()
        except Exception:  # noqa: BLE001
            continue
        for fam in families:
            labels = set(getattr(collector, "_labelnames", ()) or ())
            suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                        "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
            for suffix in suffixes.get(fam.type, ("",)):
                names[fam.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


_PROMQL_WORDS = {
    # functions, aggregations and keywords that look like identifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets", "histogram_quantile",
    "label_replace", "label_join", "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "time",
    "timestamp", "vector", "scalar", "absent", "absent_over_time", "sort", "sort_desc", "predict_linear",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "present_over_time", "quantile_over_time", "stddev_over_time", "ln", "log2", "log10", "exp", "sqrt",
    "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)')


def referenced_metrics(expr: str) -> dict[str, set[str]]:
    """Metric names a PromQL expression selects, each with the label names its matchers use."""
    expr = re.sub(r"\$\{?\w+\}?", "1m", expr)  # Grafana variables ($__rate_interval, ...)
    expr = _STRING.sub('""', expr)  # label values and label_replace arguments
    expr = _GROUPING.sub(" ", expr)  # by (...), on (...), ...
    found: dict[str, set[str]] = {}
    for m in _SELECTOR.finditer(expr):
        name, body = m.group(1), m.group(2)
        if name in _PROMQL_WORDS:
            continue
        if not body and expr[m.end():].lstrip().startswith("("):  # a function call
            continue
        found.setdefault(name, set()).update(_MATCHER.findall(body) if body else ())
    return found


# -- a Prometheus on loopback -------------------------------------------------------
class Prometheus:
    """``prometheus`` started on 127.0.0.1 with a config and rules written to ``workdir``."""

    def __init__(self, workdir: Path, jobs: dict[str, list[int]], rules: dict | None,
                 interval: str = "1s") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
                for job, ports in jobs.items()
            ],
        }
        if rules is not None:
            rules_path = workdir / "ticktide.rules.yml"
            rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
            config["rule_files"] = [str(rules_path)]
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "Prometheus":
        binary = require_binary("prometheus")
        (self.workdir / "tsdb").mkdir(exist_ok=True)
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
             "--log.level=info"],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query; a list of {"metric": {...}, "value": [ts, "v"]}."""
        return self.api("query", query=expr)["result"]

    def values(self, expr: str) -> list[float]:
        return [float(r["value"][1]) for r in self.query(expr)]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def firing(self, name: str) -> list[dict]:
        return [a for a in self.alerts() if a["labels"].get("alertname") == name and a["state"] == "firing"]

    def wait_for(self, what: str, predicate, timeout: float, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = predicate()
            except (urllib.error.URLError, OSError) as exc:
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
            time.sleep(interval)
