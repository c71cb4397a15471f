"""The layers of docs/architecture.md, checked by import-linter's ``lint-imports``.

Contracts live in pyproject.toml: application (ticktide) -> producers | consumers
-> streaming -> schemas, consumer packages independent, no cycles between siblings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ticktide", "producers", "consumers", "streaming", "schemas")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_import_contract():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


def _copy_tree(dest: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.nb?", "static"))


def test_an_upward_import_breaks_the_layers(tmp_path):
    _copy_tree(tmp_path)
    with open(tmp_path / "streaming" / "codec.py", "a") as fh:
        fh.write("\nimport consumers.features  # upward: the runtime must not know its consumers\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "streaming is not allowed to import consumers" in res.stdout


def test_a_cycle_between_siblings_breaks_the_contract(tmp_path):
    _copy_tree(tmp_path)
    with open(tmp_path / "producers" / "outcomes.py", "a") as fh:
        fh.write("\nimport producers.venues.frames  # outcomes <-> venues: a cycle\n")
    with open(tmp_path / "producers" / "venues" / "frames.py", "a") as fh:
        fh.write("\nimport producers.outcomes\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "No cycles are allowed in producers" in res.stdout
