"""``ticktide normalize`` in process, and the recording reader it uses."""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import pytest

from producers.recordings.readers import ReadStats, detect_format, read_frames
from schemas.events import DeadLetter, Tick
from ticktide.cli import main

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


# --- batch path == per-frame path, byte for byte ------------------------------------

import itertools  # noqa: E402
import random  # noqa: E402

from producers import outcomes  # noqa: E402
from producers.recordings import normalize as normalize_mod  # noqa: E402
from producers.venues.base import ParseResult  # noqa: E402

RECORDINGS = [
    ("binance", "spot_btcusdt_20240808.ndjson.gz"),
    ("binance", "BINANCE.ws.1.0"),
    ("coinbase", "COINBASE.ws.28.0"),
    ("kraken", "KRAKEN.ws.48.0"),
    ("kraken", "KRAKEN.ws.49.0"),
    ("binance-usdm", "frames/binance_usdm.jsonl"),
    ("coinbase", "frames/coinbase_advanced.jsonl"),
    ("kraken", "frames/kraken_v2.jsonl"),
]


def _run_cli(monkeypatch, capsys, tmp_path, venue, path, *, batch, chunk=1000, extra=()):
    """One ``ticktide normalize`` in process: (stdout, dlq file, stderr) as bytes/str.

    ``DeadLetter.ts_proc`` comes from a counter so dead letters are reproducible
    (and a different number or order of stamps would show)."""
    monkeypatch.setattr(normalize_mod, "BATCH", batch)
    monkeypatch.setattr(normalize_mod, "CHUNK_SIZE", chunk)
    monkeypatch.setattr(outcomes, "_clock", itertools.count(1).__next__)
    dlq = tmp_path / "dlq.jsonl"  # same path both runs: it is in the summary
    capsys.readouterr()
    rc = main(["normalize", "--venue", venue, "--plain-clock", "index", "--quality",
               "--dlq", str(dlq), *extra, str(path)])
    assert rc == 0
    cap = capsys.readouterr()
    return cap.out, dlq.read_bytes(), cap.err


def _assert_same(monkeypatch, capsys, tmp_path, venue, path, chunks=(1000,), extra=()):
    ref = _run_cli(monkeypatch, capsys, tmp_path, venue, path, batch=False, extra=extra)
    for chunk in chunks:
        got = _run_cli(monkeypatch, capsys, tmp_path, venue, path, batch=True, chunk=chunk, extra=extra)
        assert got[0] == ref[0], f"stdout differs (chunk {chunk})"
        assert got[1] == ref[1], f"dead letters differ (chunk {chunk})"
        assert got[2] == ref[2], f"summary differs (chunk {chunk})"
    return ref


@pytest.mark.parametrize("venue,name", RECORDINGS, ids=[n for _, n in RECORDINGS])
def test_batch_path_matches_per_frame_on_recordings(monkeypatch, capsys, tmp_path, venue, name):
    chunks = (1000, 7) if name.startswith("spot") else (1000, 7, 2, 1)
    out, _, err = _assert_same(monkeypatch, capsys, tmp_path, venue, DATA / name, chunks)
    assert "frames: " in err and (out or "ticks written: 0" in err)


def test_batch_path_matches_per_frame_without_validation(monkeypatch, capsys, tmp_path):
    for venue, name in RECORDINGS:
        _assert_same(monkeypatch, capsys, tmp_path, venue, DATA / name, (1000, 3), extra=("--no-validate",))


def _mixed_binance_recording(path, seed=7, n=4000):
    """hftbacktest-format Binance frames: trade runs of every length (1 to 300) for two
    symbols, bookTickers, book/kline/ack frames, garbage, trades and quotes that
    validation rejects or flags (price <= 0, jumps, seq regressions, stale, crossed)."""
    rng = random.Random(seed)
    lines = []
    ts = 1_723_161_254_000_000_000
    seq = {"BTCUSDT": 1000, "ETHUSDT": 5000}
    u = 1
    while len(lines) < n:
        ts += rng.randint(1, 5_000_000)
        r = rng.random()
        if r < 0.6:  # a run of trades
            sym = rng.choice(["BTCUSDT", "ETHUSDT"])
            for _ in range(rng.choice([1, 2, 3, 31, 32, 33, 64, 65, 120, 300])):
                ts += rng.randint(1, 1_000_000)
                seq[sym] += 1
                price = f"{60000 + rng.randint(-50, 50)}.{rng.randint(0, 99):02d}"
                t_ms = ts // 1_000_000 - rng.randint(0, 20)
                t_id = seq[sym]
                x = rng.random()
                if x < 0.01:
                    price = "-1.5"  # rejected
                elif x < 0.02:
                    price = "0"  # rejected
                elif x < 0.03:
                    price = "90000.0"  # jump: flagged
                elif x < 0.04:
                    t_id -= 3  # seq regression: flagged
                elif x < 0.05:
                    t_ms -= 10_000  # stale: flagged
                elif x < 0.055:
                    price = "1e400"  # non-finite: parse error
                lines.append(b"%d " % ts + (
                    '{"stream":"%s@trade","data":{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%s",'
                    '"q":"0.%03d","T":%d,"m":%s,"M":true}}' % (
                        sym.lower(), t_ms, sym, t_id, price, rng.randint(1, 999), t_ms,
                        "true" if rng.random() < 0.5 else "false")).encode())
        elif r < 0.8:
            u += 1
            bid = 60000 + rng.randint(-5, 5)
            ask = bid + (rng.choice([1, 2, -3]) if rng.random() < 0.05 else 1)
            if rng.random() < 0.02:
                bid = -bid  # rejected
            lines.append(b"%d " % ts + (
                '{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"%d.00",'
                '"B":"1.5","a":"%d.00","A":"2.5"}}' % (u, bid, ask)).encode())
        else:
            lines.append(b"%d " % ts + rng.choice([
                b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":1,"u":2,"b":[],"a":[]}}',
                b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","k":{}}}',
                b'{"result":null,"id":1}',
                b"not json at all",
                b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
                b'{"stream":"btc-usdt@trade","data":{"e":"trade","E":1,"s":"BTC-USDT","t":1,"p":"1",'
                b'"q":"1","T":1,"m":true}}',
                b'{"code":-1121,"msg":"Invalid symbol."}',
                b"[]",
            ]))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_batch_path_matches_per_frame_on_mixed_frames(monkeypatch, capsys, tmp_path):
    src = tmp_path / "mixed.hft"
    _mixed_binance_recording(src)
    _, dlq, err = _assert_same(monkeypatch, capsys, tmp_path, "binance", src, (1000, 64, 33, 7, 1))
    # the fixture does exercise every outcome
    assert "rejected by validation 0" not in err and "parse errors 0" not in err
    assert "flagged: 0" not in err and dlq.count(b"\n") > 20
    for venue in ("binance-usdm", "coinbase", "kraken"):
        _assert_same(monkeypatch, capsys, tmp_path, venue, src, (1000, 5))


class _MultiTickAdapter:
    """A stand-in adapter whose frames give 0, 1 or several ticks, with a naive
    ``parse_many``: normalize must then map ticks back to frames itself."""

    name = "multi"

    def parse(self, frame, ts_recv):
        text = frame.decode()
        if text == "skip":
            return ParseResult(skipped="heartbeat")
        if text == "nothing":
            return ParseResult()
        if not text.lstrip("-").replace(",", "").replace("-", "").isdigit():
            return ParseResult(error=f"bad frame {text!r}")
        return ParseResult([Tick(symbol="X", venue="multi", kind="trade", ts_event=ts_recv,
                                 ts_recv=ts_recv, price=float(p), size=1.0, side="buy")
                            for p in text.split(",")])

    def parse_many(self, frames, ts_recv, problems=None):
        out = []
        for i, f in enumerate(frames):
            res = self.parse(f, ts_recv[i])
            if res.ticks:
                out.extend(res.ticks)
            elif problems is not None:
                problems.append((i, res))
        return out


@pytest.mark.parametrize("with_parse_many", [True, False])
def test_normalize_chunks_multi_tick_frames(monkeypatch, with_parse_many):
    from producers.validation import Validator

    frames = [(i, f) for i, f in enumerate(
        [b"5", b"6,7", b"skip", b"-1,8", b"oops", b"9,-2,10", b"nothing", b"11", b"0"] * 5)]
    adapter = _MultiTickAdapter()
    if not with_parse_many:
        monkeypatch.setattr(_MultiTickAdapter, "parse_many", None)
    enc = msgspec.json.Encoder()

    def run(fn, **kw):
        monkeypatch.setattr(outcomes, "_clock", itertools.count(1).__next__)
        s = normalize_mod.Summary()
        items = list(fn(frames, adapter, Validator(), s, **kw))
        if fn is normalize_mod.normalize_chunks:
            items = [x for ticks, dead in items for x in ticks + dead]
        ticks = [enc.encode(x) for x in items if type(x) is Tick]
        dead = [enc.encode(x) for x in items if type(x) is DeadLetter]
        return ticks, dead, s.to_dict()

    ref = run(normalize_mod.normalize_frames)
    assert ref[2]["rejected"] == 15 and ref[2]["parse_errors"] == 5 and ref[2]["skipped"] == {
        "heartbeat": 5, "unspecified": 5}
    for chunk in (1000, 4, 1):
        assert run(normalize_mod.normalize_chunks, chunk_size=chunk) == ref
