"""``ticktide optimize``: the portfolio consumer's optimization from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ticktide.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
SYMBOLS = "AAPL,MA,JPM,WMT,XOM,PFE,T,BAC"


def _optimize(capsys, *args) -> dict:
    rc = main(["optimize", "--prices", str(DATA), "--format", "json", *args])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def test_matches_the_workflows_first_rebalance_on_the_same_window(tmp_path, capsys):
    cfg = tmp_path / "wf.toml"
    cfg.write_text("[portfolio]\nlookback = 120\nmin_history = 60\n[portfolio.constraints]\nmax_weight = 0.3\n")
    rc = main(["workflow", "run", "--prices", str(DATA), "--symbols", SYMBOLS, "--start", "2016-04-11",
               "--end", "2016-04-15", "--out", str(tmp_path / "wf"), "--config", str(cfg), "--no-progress",
               "--no-report"])
    assert rc == 0
    first = json.loads((tmp_path / "wf" / "results.json").read_text())["rebalances"][0]
    assert first["status"] == "ok" and first["date"] == "2016-04-11"
    got = _optimize(capsys, "--symbols", SYMBOLS, "--end", first["date"], "--config", str(cfg))
    assert got["window"] == {"start": "2015-10-16", "end": "2016-04-11", "rows": 121}
    for s in SYMBOLS.split(","):
        assert got["weights"][s] == pytest.approx(first["new_weights"].get(s, 0.0), abs=1e-6)
    assert got["expected_return"] == pytest.approx(first["expected_return"], rel=1e-9)
    assert got["volatility"] == pytest.approx(first["expected_volatility"], rel=1e-9)
    assert got["sharpe"] == pytest.approx(first["sharpe"], rel=1e-9)
    assert sum(got["risk_contributions"].values()) == pytest.approx(1.0, abs=1e-9)


def test_objectives_table_frontier_and_plot(tmp_path, capsys):
    mv = _optimize(capsys, "--symbols", SYMBOLS, "--end", "2016-12-30", "--objective", "min_variance")
    mr = _optimize(capsys, "--symbols", SYMBOLS, "--end", "2016-12-30", "--objective", "max_return",
                   "--target-volatility", "0.16", "--frontier", "6", "--plot", str(tmp_path / "f.png"))
    assert mr["volatility"] <= 0.16 + 1e-6 and mr["expected_return"] > mv["expected_return"]
    f = mr["frontier"]
    assert len(f) == 6 and f[0]["volatility"] == pytest.approx(mv["volatility"], rel=1e-6)
    assert all(a["expected_return"] <= b["expected_return"] + 1e-9 for a, b in zip(f, f[1:]))
    assert (tmp_path / "f.png").stat().st_size > 10_000
    rc = main(["optimize", "--prices", str(DATA), "--symbols", SYMBOLS, "--end", "2016-12-30"])
    text = capsys.readouterr().out
    assert rc == 0 and "risk contribution" in text and "Sharpe" in text and "risk-free rate 2.00%" in text


@pytest.mark.parametrize("args,code,needle", [
    (["--symbols", "AAPL,NOPE"], 2, "no prices for NOPE"),
    (["--end", "1989-12-29"], 2, "widen --start/--end"),
    (["--frontier", "1"], 2, "--frontier needs at least 2"),
])
def test_bad_input_is_one_line(capsys, args, code, needle):
    rc = main(["optimize", "--prices", str(DATA), *args])
    err = capsys.readouterr().err
    assert rc == code and needle in err and err.startswith("ticktide optimize: ") and err.count("\n") == 1


def test_infeasible_names_the_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[portfolio.constraints]\nmax_weight = 0.05\n")
    rc = main(["optimize", "--prices", str(DATA), "--symbols", SYMBOLS, "--end", "2016-12-30", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert f"8 assets × max_weight 0.05 = 0.40 < 1.0 (set in {cfg} [portfolio.constraints] max_weight)" in err
