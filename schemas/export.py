"""Export JSON Schema files for every v1 event type to ``schemas/json/``.

Run ``python -m schemas.export`` after changing a Struct; a test fails when
the committed files drift from the Structs.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import msgspec

from schemas.topics import CATALOGUE

JSON_DIR = Path(__file__).with_name("json")


def render_all() -> dict[str, str]:
    """File name -> JSON text, one file per topic that carries a Struct."""
    files: dict[str, str] = {}
    for topic in CATALOGUE.values():
        if topic.value_type is None:
            continue
        schema = msgspec.json.schema(topic.value_type)
        for definition in schema.get("$defs", {}).values():
            # msgspec 0.22 dedents docstrings, 0.23 keeps the indentation after an
            # unindented first line: cleandoc gives one text whichever is installed
            if "description" in definition:
                definition["description"] = inspect.cleandoc(definition["description"])
        schema["$id"] = f"ticktide/{topic.name}.schema.json"
        schema["title"] = f"{topic.name} ({topic.value_type.__name__})"
        schema["x-ticktide-key"] = topic.key
        files[f"{topic.name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in render_all().items():
        (JSON_DIR / name).write_text(text)
    print(f"wrote {len(render_all())} schema files to {JSON_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
