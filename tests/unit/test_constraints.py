"""constraints.txt pins every dependency the project declares, within its bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"constraints.txt: not a 'name==version' pin: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def test_every_runtime_and_dev_dependency_is_pinned_within_its_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pinned = pins()
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is declared in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pinned[name]}, outside pyproject's {req.specifier}"


def test_the_installs_use_the_pins():
    makefile = (ROOT / "Makefile").read_text()
    run_tests = (ROOT / "scripts" / "run-tests").read_text()
    assert "TICKTIDE_CONSTRAINTS ?= constraints.txt" in makefile and "$(PIN) -e ." in makefile
    assert 'TICKTIDE_CONSTRAINTS-constraints.txt' in run_tests and '"${pin[@]}" -e' in run_tests
