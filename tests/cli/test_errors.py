"""One error style: every failure a user can cause is one line `ticktide <command>: what (fix)`
and a non-zero exit, never a traceback. Each case runs the real CLI as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
PRICES = DATA / "stock_prices_20.csv"


def closed_port() -> int:
    """A local port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_files(tmp: Path) -> dict[str, str]:
    files = {
        "binary": bytes(range(256)) * 4,
        "bad_date.csv": b"date,A,B\n2020-01-02,1,2\n2020-13-45,1.5,2\n",
        "not_a_date.csv": b"date,A\n2020-01-02,1\nnot-a-date,2\n",
        "dup.csv": b"date,A,B\n2020-01-02,1,2\n2020-01-02,1.5,2\n",
        "header_only.csv": b"date,AAPL,GOOG\n",
        "one_row.csv": b"date,AAPL,GOOG\n2020-01-02,1,2\n",
        "inf.csv": b"date,AAPL,GOOG\n2020-01-02,1,2\n2020-01-03,inf,2\n2020-01-06,1,2\n",
        "nan_weight.json": b'{"AAPL": 0.5, "GOOG": NaN}',
        "weights.json": b'{"AAPL": 0.5, "GOOG": 0.3}',
        "bad.toml": b"cooldown_s = = 3\n",
        "unknown_key.toml": b"cooldown = 3\n",
        "k_zero.toml": b"[rules.price_movement]\nk = 0\n",
        "backwards.jsonl": b'{"symbol":"A","ts":"2020-01-03","kind":"bar","price":1.0,"return_1":null}\n'
                           b'{"symbol":"A","ts":"2020-01-02","kind":"bar","price":1.0,"return_1":null}\n',
    }
    out = {}
    for name, content in files.items():
        (tmp / name).write_bytes(content)
        out[name] = str(tmp / name)
    return out


def cases(tmp: Path, busy: int) -> list[tuple[str, list[str], str]]:
    """(id, argv, a word the one line must contain); ``busy`` is a port something listens on."""
    f = write_files(tmp)
    down = f"kafka://127.0.0.1:{closed_port()}"
    missing = str(tmp / "missing.toml")
    return [
        ("consume-broker-down", ["consume", "features", "--bus", down], "cannot reach Kafka"),
        ("consume-unknown-host", ["consume", "features", "--bus", "kafka://no-such-host.invalid:9092"],
         "cannot reach Kafka"),
        ("subscribe-broker-down", ["subscribe", "signals.v1", "--bus", down], "cannot reach Kafka"),
        ("topics-create-broker-down", ["topics", "create", "--bus", down], "cannot reach Kafka"),
        ("stress-broker-down", ["stress", "--portfolio", "p", "--bus", down], "cannot reach Kafka"),
        ("gateway-broker-down", ["gateway", "--bus", down, "--port", "0"], "cannot reach Kafka"),
        ("bus-without-scheme", ["consume", "features", "--bus", "localhost:9092"], "bad bus URL"),
        ("demo-bad-bus", ["demo", "--bus", "redis://x"], "bad bus URL"),
        ("subscribe-unknown-topic", ["subscribe", "signals"], "signals.v1"),
        ("consume-missing-config", ["consume", "signals", "--config", missing], "no such file"),
        ("consume-bad-toml", ["consume", "signals", "--config", f["bad.toml"]], "TOML"),
        ("consume-unknown-config-key", ["consume", "signals", "--config", f["unknown_key.toml"]], "cooldown"),
        ("consume-signals-k-zero", ["consume", "signals", "--config", f["k_zero.toml"]], "k must be > 0"),
        ("consume-no-name", ["consume"], "NAME"),
        ("consume-unknown-consumer", ["consume", "featurez"], "invalid choice"),
        ("consume-processor-not-found", ["consume", "--processor", "no_such_module_xyz:Thing"], "no_such_module"),
        ("consume-wrong-flag", ["consume", "features", "--bogus"], "ticktide consume"),
        ("alerts-send-missing-config", ["alerts-send", "--config", missing], "no such file"),
        ("features-binary", ["features", "--input", f["binary"]], "UTF-8"),
        ("features-bad-date", ["features", "--input", f["bad_date.csv"]], "line 3"),
        ("features-not-a-date", ["features", "--input", f["not_a_date.csv"]], "not-a-date"),
        ("features-duplicate", ["features", "--input", f["dup.csv"]], "duplicate"),
        ("features-missing", ["features", "--input", missing], "no such file"),
        ("signals-missing", ["signals", "--input", missing], "no such file"),
        ("signals-binary", ["signals", "--input", f["binary"]], "line 1"),
        ("signals-backwards", ["signals", "--input", f["backwards.jsonl"]], "back in time"),
        ("risk-header-only", ["risk", "--prices", f["header_only.csv"], "--weights", f["weights.json"]], "0 price"),
        ("risk-one-row", ["risk", "--prices", f["one_row.csv"], "--weights", f["weights.json"]], "at least 2"),
        ("risk-nan-weight", ["risk", "--prices", str(PRICES), "--weights", f["nan_weight.json"]], "not finite"),
        ("risk-inf-price", ["risk", "--prices", f["inf.csv"], "--weights", f["weights.json"]], "non-finite"),
        ("risk-duplicate-date", ["risk", "--prices", f["dup.csv"], "--weights", f["weights.json"]], "duplicate"),
        ("risk-bad-config", ["risk", "--prices", str(PRICES), "--weights", f["weights.json"], "--config",
                             f["bad.toml"]], "TOML"),
        ("workflow-missing-prices", ["workflow", "run", "--prices", missing, "--symbols", "AAPL", "--start",
                                     "2017-01-03", "--end", "2017-03-01", "--out", str(tmp / "o")], "no such file"),
        ("workflow-bad-date", ["workflow", "run", "--input", f["not_a_date.csv"], "--symbols", "A", "--start",
                               "2020-01-01", "--end", "2020-02-01", "--out", str(tmp / "o")], "not-a-date"),
        ("workflow-wrong-flag", ["workflow", "run", "--prizes", "x"], "ticktide workflow run"),
        ("replay-broker-down", ["replay", "--input", str(DATA / "BINANCE.ws.1.0"), "--venue", "binance", "--bus",
                                down], "cannot reach Kafka"),
        ("produce-broker-down", ["produce", "--venue", "binance", "--symbols", "BTCUSDT", "--bus", down],
         "cannot reach Kafka"),
        ("replay-unknown-venue", ["replay", str(DATA / "BINANCE.ws.1.0"), "--venue", "binanse"], "binance-usdm"),
        ("replay-missing-file", ["replay", "--input", missing, "--venue", "binance"], "no such file"),
        ("replay-no-file", ["replay", "--venue", "binance"], "--input"),
        ("produce-unknown-venue", ["produce", "--venue", "ftx", "--symbols", "X"], "invalid choice"),
        ("normalize-wrong-venue", ["normalize", str(DATA / "BINANCE.ws.1.0"), "--venue", "kraken"],
         "look like --venue binance"),
        ("normalize-missing", ["normalize", "--input", missing, "--venue", "kraken"], "no such file"),
        ("metrics-port-in-use", ["consume", "features", "--bus", "memory://", "--metrics-port", str(busy)],
         "--metrics-port"),
        ("log-level-bad", ["consume", "features", "--log-level", "LOUD"], "--log-level"),
    ]


def run_cli(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TICKTIDE_BUS", "TICKTIDE_GATEWAY_TOKENS")}
    if argv[0] == "gateway":
        env["TICKTIDE_GATEWAY_TOKENS"] = "x" * 24
    return subprocess.run([sys.executable, "-m", "ticktide.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_every_user_error_is_one_line_and_a_nonzero_exit(tmp_path):
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    table = cases(tmp_path, listener.getsockname()[1])
    with ThreadPoolExecutor(max_workers=4) as pool:  # the cases are independent processes
        results = list(pool.map(lambda case: run_cli(case[1], tmp_path), table))
    listener.close()
    problems = []
    for (name, argv, word), out in zip(table, results):
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        command = "ticktide " + (" ".join(argv[:2]) if argv[0] == "workflow" else argv[0])
        if (out.returncode == 0 or "Traceback" in out.stderr or not 1 <= len(lines) <= 3
                or not lines[-1].startswith(command + ":") or word.lower() not in out.stderr.lower()):
            problems.append(f"{name}: exit {out.returncode}, stderr:\n{out.stderr[-1500:]}")
    assert not problems, "\n\n".join(problems)


def test_a_traceback_with_log_level_debug(tmp_path):
    out = run_cli(["consume", "signals", "--config", str(write_files(tmp_path)["bad.toml"]), "--log-level",
                   "DEBUG"], tmp_path)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_the_documented_plugin_example_runs_from_a_clone(tmp_path):
    """README: `ticktide signals --config consumers/signals/signals.example.toml` from the repo root,
    with the console script (no `python -m`, no PYTHONPATH)."""
    script = Path(sys.executable).with_name("ticktide")
    features = tmp_path / "f.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    made = subprocess.run([str(script), "features", "--input", str(PRICES)], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    features.write_bytes(made.stdout)
    out = subprocess.run([str(script), "signals", "--input", str(features), "--config",
                          "consumers/signals/signals.example.toml"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"type":"mean_reversion"' in out.stdout
