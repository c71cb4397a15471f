"""docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker engine.

Every ticktide service's command must parse as a real ``ticktide`` subcommand,
every metrics port must be scraped by deploy/prometheus/prometheus.yml, every
topic the file names must be in the catalogue, and the Kafka image must be the
version the local test broker runs.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from schemas.topics import CATALOGUE
from ticktide.cli import build_parser
from ticktide.processors import CONSUMERS
from tests.ops.promtest import COMPOSE, PROM_CONFIG, ROOT, yaml

COMPOSE_DOC = yaml.safe_load(COMPOSE.read_text())
SERVICES: dict[str, dict] = COMPOSE_DOC["services"]
TICKTIDE = {name: svc for name, svc in SERVICES.items()
            if str(svc.get("image", "")).startswith("ticktide") or "build" in svc}
POM_VERSION = re.search(r"<kafka\.version>([^<]+)</kafka\.version>",
                        (ROOT / "deploy/kafka/pom.xml").read_text()).group(1)


def command(svc: dict) -> list[str]:
    cmd = svc.get("command")
    assert isinstance(cmd, list), f"use the exec (list) form for commands: {cmd!r}"
    return [str(c) for c in cmd]


# subcommands that serve /metrics on their own HTTP port (--port) instead of --metrics-port
METRICS_ON_HTTP_PORT = {"gateway": 8080}


def _option(cmd: list[str], flag: str) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == flag:
            return cmd[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def metrics_port(cmd: list[str]) -> int | None:
    port = _option(cmd, "--metrics-port")
    if port is None and cmd and cmd[0] in METRICS_ON_HTTP_PORT:
        port = _option(cmd, "--port") or METRICS_ON_HTTP_PORT[cmd[0]]
    return None if port is None else int(port)


def _package_written(cmd: list[str]) -> bool:
    """False for a subcommand whose CLI is still to be written (ticktide/gateway/commands.py)."""
    return not (cmd and cmd[0] == "gateway" and not (ROOT / "consumers" / "gateway" / "commands.py").exists())


def test_compose_has_the_whole_stack():
    consumed = {command(s)[1] for s in TICKTIDE.values() if command(s)[0] == "consume"}
    assert consumed == set(CONSUMERS), f"every consumer runs as its own service; missing {set(CONSUMERS) - consumed}"
    commands = [command(s) for s in TICKTIDE.values()]
    assert ["topics", "create"] in commands
    assert any(c[0] == "simulator" for c in commands)
    producers = [c for c in commands if c[0] == "produce"]
    assert any("--url" not in c for c in producers), "one producer reads a real venue (its default public URL)"
    assert any(c[c.index("--url") + 1].startswith("ws://simulator:") for c in producers if "--url" in c)
    assert any(c[0] == "gateway" for c in commands)
    assert {"kafka", "prometheus", "grafana"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(TICKTIDE))
def test_service_command_is_a_ticktide_subcommand(name):
    cmd = command(TICKTIDE[name])
    if not _package_written(cmd):
        pytest.xfail(f"{cmd[0]}: consumers/{cmd[0]}/commands.py is not written yet")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(cmd)
    except SystemExit as exc:
        hint = ""
        if "invalid choice" in err.getvalue() and (ROOT / "consumers" / cmd[0] / "commands.py").exists():
            hint = f"\n(consumers/{cmd[0]}/commands.py exists: add 'consumers.{cmd[0]}.commands' to COMMAND_MODULES " \
                   "in ticktide/cli.py)"
        pytest.fail(f"service {name}: `ticktide {' '.join(cmd)}` does not parse (exit {exc.code}):\n"
                    f"{err.getvalue()}{hint}")
    assert callable(getattr(args, "func", None))


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_consumed_package_exposes_create_processor(consumer):
    pkg = CONSUMERS[consumer]
    if not (ROOT / Path(*pkg.split("."))).is_dir():
        pytest.xfail(f"{pkg} is not written yet")
    module = importlib.import_module(pkg)
    assert callable(getattr(module, "create_processor", None)), f"{pkg}.create_processor is missing"


def test_every_ticktide_service_uses_the_compose_broker():
    kafka_env = SERVICES["kafka"]["environment"]
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    for name, svc in TICKTIDE.items():
        cmd = command(svc)
        assert svc.get("environment", {}).get("TICKTIDE_BUS") == "kafka://kafka:9092", name
        assert not any(a.startswith("memory://") or a == "--bus" for a in cmd), f"{name}: use TICKTIDE_BUS"


def test_every_metrics_port_is_scraped():
    prom = yaml.safe_load(PROM_CONFIG.read_text())
    scraped: set[tuple[str, int]] = set()
    for job in prom["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            scraped |= {(n, int(sd["port"])) for n in sd["names"]}
        for sc in job.get("static_configs", []):
            for target in sc["targets"]:
                host, port = target.rsplit(":", 1)
                scraped.add((host, int(port)))
    expected = {(name, metrics_port(command(svc))) for name, svc in TICKTIDE.items()
                if metrics_port(command(svc)) is not None}
    assert expected, "no service serves metrics"
    assert expected - scraped == set(), "metrics ports nobody scrapes"
    unknown = {(h, p) for h, p in scraped if h not in SERVICES and h != "localhost"}
    assert unknown == set(), "scrape targets that are not compose services"
    long_running = {n for n, s in TICKTIDE.items()
                    if command(s)[0] in ("consume", "produce", "gateway") and "profiles" not in s}
    assert long_running <= {n for n, _ in expected}, "every producer/consumer serves /metrics"


TOPIC_NAME = re.compile(r"\b[a-z][a-z0-9_-]*(?:\.[a-z0-9_-]+)*\.v\d+\b")


def test_topics_named_in_compose_exist_in_the_catalogue():
    named = set()
    for svc in TICKTIDE.values():
        for text in [*command(svc), *map(str, (svc.get("environment") or {}).values())]:
            named |= set(TOPIC_NAME.findall(text))
    assert named, "the compose file should name at least one topic (the tail service)"
    assert named <= set(CATALOGUE), f"not in schemas/topics.py: {named - set(CATALOGUE)}"


def test_topic_creation_runs_once_before_every_ticktide_service():
    creator = [n for n, s in TICKTIDE.items() if command(s) == ["topics", "create"]]
    assert len(creator) == 1
    creator_svc = TICKTIDE[creator[0]]
    assert creator_svc.get("restart") == "no"
    assert creator_svc["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name, svc in TICKTIDE.items():
        if name == creator[0] or command(svc)[0] == "simulator":
            continue
        dep = svc.get("depends_on", {})
        assert dep.get(creator[0], {}).get("condition") == "service_completed_successfully", name


def test_kafka_is_kraft_on_the_local_broker_version():
    kafka = SERVICES["kafka"]
    assert kafka["image"] == f"apache/kafka:{POM_VERSION}"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert not any("ZOOKEEPER" in k for k in env)
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


def test_features_runs_as_a_consumer_group_of_two():
    features = [s for s in TICKTIDE.values() if command(s)[:2] == ["consume", "features"]]
    assert len(features) == 1
    assert features[0]["deploy"]["replicas"] >= 2
    assert "--group" not in command(features[0]), "replicas share the default group"
    assert not features[0].get("ports"), "a scaled service cannot publish a fixed host port"


def test_monitoring_mounts_exist():
    def host_paths(svc):
        return [v.split(":")[0] for v in svc.get("volumes", []) if v.startswith("./")]

    prom = host_paths(SERVICES["prometheus"])
    assert "./deploy/prometheus" in prom
    assert any("--config.file=/etc/prometheus/prometheus.yml" == c for c in SERVICES["prometheus"]["command"])
    graf = host_paths(SERVICES["grafana"])
    assert {"./deploy/grafana/provisioning", "./deploy/grafana/dashboards"} <= set(graf)
    for path in prom + graf:
        assert (ROOT / path).exists(), path


def test_host_ports_are_unique():
    ports = [p.split(":")[-2] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(ports) == len(set(ports)), ports


def test_dockerfile_builds_the_ticktide_entrypoint():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    # the pinned versions the suite passed with (constraints.txt), copied in with the project
    assert re.search(r"^RUN pip install -c constraints\.txt \.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["ticktide"\]', text, re.M)
    copied = {src for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]}
    assert "constraints.txt" in copied
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]*)\]", pyproject).group(1)
    packages = {p.strip().strip('"').rstrip("*") for p in include.split(",") if p.strip()}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    assert not packages & set(ignored)


# -- the compose file as a real compose implementation reads it ----------------------------------
def _compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``docker-compose config`` (Debian's docker-compose: parses and interpolates, no daemon needed)."""
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: apt-get install docker-compose (scripts/run-tests does)"
    env_file = tmp_path / "compose.env"  # not the developer's .env
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKTIDE_")}
    return subprocess.run([exe, "--env-file", str(env_file), "-f", str(COMPOSE), "config"], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120)


def test_compose_refuses_to_start_a_gateway_without_tokens(tmp_path):
    out = _compose_config(tmp_path, {})
    assert out.returncode != 0
    assert "TICKTIDE_GATEWAY_TOKENS" in out.stderr and "openssl rand" in out.stderr


def test_compose_config_parses_and_the_gateway_has_prices_and_tokens(tmp_path):
    token = "t" * 32
    out = _compose_config(tmp_path, {"TICKTIDE_GATEWAY_TOKENS": token})
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)["services"]
    gateway = resolved["gateway"]
    assert gateway["environment"]["TICKTIDE_GATEWAY_TOKENS"] == token
    prices = _option([str(c) for c in gateway["command"]], "--prices")
    dockerfile = (ROOT / "Dockerfile").read_text()
    # the prices file the gateway is given is the one the image bakes in, copied from the repo
    copied = re.search(rf"^COPY (\S+) {re.escape(prices)}$", dockerfile, re.M)
    assert copied and (ROOT / copied.group(1)).is_file(), prices
    assert re.search(r"^COPY examples ", dockerfile, re.M)
