import json

import msgspec
import pytest

from schemas import CATALOGUE, Tick, topic
from schemas.export import JSON_DIR, render_all
from streaming.codec import decode, encode, key_for


def test_exported_json_schemas_match_structs():
    expected = render_all()
    on_disk = {p.name: p.read_text() for p in JSON_DIR.glob("*.schema.json")}
    assert set(on_disk) == set(expected), "run: python -m schemas.export"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} drifted from its Struct; run: python -m schemas.export"


def test_every_event_topic_has_a_schema_file():
    for t in CATALOGUE.values():
        if t.value_type is not None:
            assert (JSON_DIR / f"{t.name}.schema.json").exists()
    schema = json.loads((JSON_DIR / "ticks.v1.schema.json").read_text())
    assert "Tick" in json.dumps(schema)


def test_tick_roundtrip_and_key():
    tick = Tick(symbol="BTCUSDT", venue="binance", kind="trade", ts_event=1, ts_recv=2, price=61234.5, size=0.01)
    raw = encode(tick)
    assert decode("ticks.v1", raw) == tick
    assert key_for("ticks.v1", tick) == b"BTCUSDT"
    assert key_for("alerts.v1", tick) is None


def test_decode_rejects_bad_input_with_a_clear_error():
    with pytest.raises(msgspec.ValidationError, match="kind"):
        decode("ticks.v1", b'{"symbol":"X","venue":"v","kind":"nope","ts_event":1,"ts_recv":1}')
    with pytest.raises(msgspec.DecodeError):
        decode("ticks.v1", b"not json")


def test_unknown_topic_names_the_known_ones():
    with pytest.raises(KeyError, match="ticks.v1"):
        topic("tick.v1")


def test_changelogs_are_compacted():
    assert CATALOGUE["changelog.features.features.v2"].config == {"cleanup.policy": "compact"}
    assert CATALOGUE["ticks.v1"].config["cleanup.policy"] == "delete"
