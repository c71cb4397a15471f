"""Every relative link in README.md and docs/ resolves inside the repository (a clone has
nothing else), anchors included."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(md: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in FENCE.sub("", md.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def links(md: Path) -> list[str]:
    return LINK.findall(CODE.sub("", FENCE.sub("", md.read_text())))


def test_every_relative_link_resolves_inside_the_repo():
    problems = []
    checked = 0
    for md in documents():
        for target in links(md):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            checked += 1
            if not dest.is_relative_to(ROOT):
                problems.append(f"{md.name}: {target} points outside the repository")
            elif not dest.exists():
                problems.append(f"{md.name}: {target} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{md.name}: {target}: no heading #{anchor}")
    assert not problems, "\n".join(problems)
    assert checked >= 10  # the docs do link each other


def test_the_checker_sees_a_broken_link(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("see [the design](../elsewhere/DESIGN.md) and `[not a link](code)`\n```\n[x](fenced.md)\n```\n")
    assert links(md) == ["../elsewhere/DESIGN.md"]


def test_the_files_the_rules_and_dashboard_point_to_exist():
    for path in ("deploy/prometheus/rules/ticktide.rules.yml", "deploy/grafana/dashboards/ticktide.json"):
        for doc in re.findall(r"docs/[\w.-]+\.md", (ROOT / path).read_text()):
            assert (ROOT / doc).is_file(), f"{path} points at {doc}"
    rules = (ROOT / "deploy/prometheus/rules/ticktide.rules.yml").read_text()
    ops = anchors(ROOT / "docs" / "operations.md")
    for alert in re.findall(r"alert:\s*(\w+)", rules):
        assert alert.lower() in ops, f"docs/operations.md has no section for {alert}"


def test_every_python_example_in_the_docs_is_valid_python():
    """A top-level `async for` (a SyntaxError as a script) or a typo shows here."""
    blocks = 0
    for md in documents():
        for block in re.findall(r"^```python\n(.*?)^```", md.read_text(), re.S | re.M):
            compile(block, f"{md.name} example", "exec")
            blocks += 1
    assert blocks >= 3
