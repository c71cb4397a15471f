"""``ticktide normalize`` in process, and the recording reader it uses."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import pytest

from producers.recordings import ReadStats, detect_format, read_frames
from schemas.events import DeadLetter, Tick
from streaming.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


def ticks_of(out: str) -> list[Tick]:
    dec = msgspec.json.Decoder(Tick)
    return [dec.decode(line) for line in out.splitlines()]


def test_normalize_hftbacktest_to_stdout(capsys):
    assert main(["normalize", "--venue", "binance", str(DATA / "spot_btcusdt_20240808.ndjson.gz")]) == 0
    cap = capsys.readouterr()
    ticks = ticks_of(cap.out)
    assert len(ticks) == 37_797
    assert sum(t.kind == "trade" for t in ticks) == 9_757
    assert ticks[0].kind == "quote" and ticks[0].symbol == "BTCUSDT"
    assert "ticks written: 37797 (quote=28040, trade=9757)" in cap.err
    assert "skipped frames: 3451 (book=3451)" in cap.err
    assert "1 REST snapshot" in cap.err
    assert "dead letters: 0" in cap.err


def test_normalize_dead_letters_to_dlq(tmp_path, capsys):
    src = tmp_path / "frames.jsonl"
    src.write_bytes(
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"10.5","q":"1","T":1,"m":true}}\n'
        b"this is not json\n"
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":2,"p":"-3","q":"1","T":2,"m":true}}\n'
        b'{"result":null,"id":1}\n'
    )
    dlq = tmp_path / "dlq.jsonl"
    rc = main(["normalize", "--venue", "binance", "--plain-clock", "index", "--dlq", str(dlq), str(src)])
    assert rc == 0
    cap = capsys.readouterr()
    (tick,) = ticks_of(cap.out)
    assert tick.price == 10.5 and tick.ts_recv == 0  # plain file, index clock
    letters = [msgspec.json.decode(line, type=DeadLetter) for line in dlq.read_bytes().splitlines()]
    assert [(d.stage, d.raw) for d in letters] == [
        ("producer:binance", b"this is not json"),
        ("validate", src.read_bytes().splitlines()[2]),
    ]
    assert letters[1].reason.startswith("trade_price_not_positive") and letters[1].key == "BTCUSDT"
    assert "dead letters: 2 (parse errors 1, rejected by validation 1)" in cap.err
    assert "skipped frames: 1 (ack=1)" in cap.err


def test_dead_letters_counted_without_dlq(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"[1]\n{}\n")
    assert main(["normalize", "--venue", "kraken", str(src)]) == 0
    err = capsys.readouterr().err
    assert "dead letters: 2" in err and "pass --dlq FILE" in err


def test_normalize_cryptofeed_kraken_and_output_file(tmp_path, capsys):
    out = tmp_path / "ticks.jsonl"
    rc = main(["normalize", "--venue", "kraken", "-o", str(out), "--quality", str(DATA / "KRAKEN.ws.48.0")])
    assert rc == 0
    cap = capsys.readouterr()
    assert cap.out == ""
    ticks = ticks_of(out.read_text())
    assert len(ticks) == 10 and {t.symbol for t in ticks} == {"XMRUSD", "SCEUR"}
    assert "1 outgoing" in cap.err and "heartbeat=30" in cap.err and "XMRUSD: ticks=4" in cap.err


def test_no_validate_and_errors(capsys, tmp_path):
    assert main(["normalize", "--venue", "coinbase", "--no-validate", str(DATA / "COINBASE.ws.28.0")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 214
    assert main(["normalize", "--venue", "coinbase", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad_rules = tmp_path / "r.toml"
    bad_rules.write_text('[[rules]]\nname="x"\nconditions=[{field="p",operator="is_null"}]\nactions=[{type="reject"}]\n')
    assert main(["normalize", "--venue", "coinbase", "--rules", str(bad_rules), str(DATA / "KRAKEN.ws.48.0")]) == 2
    assert "unknown field" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["normalize", "--venue", "ftx", "x"])


def test_help_lists_normalize(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "normalize" in capsys.readouterr().out


# --- the recording reader ---------------------------------------------------------

def test_reader_formats_and_gzip_by_magic(tmp_path):
    hft = tmp_path / "no_gz_suffix.bin"
    with gzip.open(hft, "wb") as fh:
        fh.write(b'1723161254087896568 {"a":1}\n1723161254087896569 {"lastUpdateId":5}\n'
                 b"garbage line\n1723161254087896570 {\"b\":2}\n")
    stats = ReadStats()
    frames = list(read_frames(hft, stats=stats))
    assert frames == [(1723161254087896568, b'{"a":1}'), (1723161254087896569, b"garbage line"),
                      (1723161254087896570, b'{"b":2}')]
    assert (stats.format, stats.snapshots, stats.malformed) == ("hftbacktest", 1, 1)

    cf = tmp_path / "cf.txt"
    cf.write_bytes(b"wss://x <-> 1618678132.368463\nwss://x <- 1618678132.83097: {\"event\":\"subscribe\"}\n"
                   b"1618678132.831468: {\"event\":\"heartbeat\"}\n\n")
    stats = ReadStats()
    assert list(read_frames(cf, stats=stats)) == [(1618678132831468000, b'{"event":"heartbeat"}')]
    assert (stats.headers, stats.outgoing, stats.blank) == (1, 1, 1)

    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b'{"a":1}\n{"b":2}\n')
    assert list(read_frames(plain, plain_clock="index")) == [(0, b'{"a":1}'), (1, b'{"b":2}')]
    ts = [t for t, _ in read_frames(plain)]
    assert ts[0] > 1_600_000_000 * 10**9 and ts[1] >= ts[0]


def test_detect_format():
    assert detect_format(b"wss://ws.kraken.com <-> 1618678132.368463") == "cryptofeed"
    assert detect_format(b'1723161253937085768 {"stream":"x"}') == "hftbacktest"
    assert detect_format(b'{"stream":"x"}') == "plain"
