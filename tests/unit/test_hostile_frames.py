"""Hostile frames in otherwise valid batches, for every venue and every parse path: a frame
nested thousands of levels deep or megabytes long is that frame's dead letter (or its ticks, if it
is valid), never a crash of the batch, and the batch path gives what the per-frame path gives."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.outcomes import Summary
from producers.recordings import normalize as normalize_mod
from producers.recordings.normalize import run_normalize
from tests.unit.test_adapter_fuzz import ADAPTERS, SEEDS, VENUES, _parse_many_matches


def deep(frame: bytes, depth: int) -> bytes:
    """The frame with an extra field nested ``depth`` arrays deep (valid JSON)."""
    body = frame.rstrip()
    if not body.endswith(b"}"):
        return b"[" * depth + b"]" * depth
    return body[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"


def huge(frame: bytes, size: int) -> bytes:
    """The frame with an extra string field of ``size`` bytes (valid JSON)."""
    body = frame.rstrip()
    if not body.endswith(b"}"):
        return b'"' + b"a" * size + b'"'
    return body[:-1] + b',"pad":"' + b"a" * size + b'"}'


def hostile(venue: str):
    seeds = [f for f in SEEDS[venue] if f.lstrip().startswith(b"{") or f.lstrip().startswith(b"[")]
    valid = st.sampled_from(SEEDS[venue])
    nested = st.builds(deep, st.sampled_from(seeds), st.sampled_from([1_000, 5_000, 100_000]))
    big = st.builds(huge, st.sampled_from(seeds), st.sampled_from([1 << 20, 4 << 20]))
    raw_deep = st.sampled_from([b"[" * 200_000, b"{\"a\":" * 50_000, b"[" * 100_000 + b"]" * 100_000])
    return st.lists(st.one_of(valid, valid, valid, nested, big, raw_deep), min_size=2, max_size=10)


@pytest.mark.parametrize("venue", VENUES)
def test_frame_and_batch_parse_survive_hostile_frames(venue):
    adapter = ADAPTERS[venue]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile(venue))
    def check(frames):
        for i, frame in enumerate(frames):  # the per-frame path: a result, never an exception
            res = adapter.parse(frame, i)
            assert res.ticks or res.error or res.skipped is not None or res == type(res)()
        if hasattr(adapter, "parse_many"):  # the batch path gives what the per-frame path gives
            _parse_many_matches(adapter, frames, list(range(10, 10 + len(frames))))

    check()


def _normalize(tmp_path, venue: str, frames: list[bytes], batch: bool) -> tuple[bytes, bytes, Summary]:
    src = tmp_path / "frames.jsonl"
    src.write_bytes(b"\n".join(f.replace(b"\n", b" ") for f in frames) + b"\n")
    out, dlq = io.BytesIO(), io.BytesIO()
    summary = run_normalize(str(src), venue, out, dlq=dlq, plain_clock="index", batch=batch, chunk_size=4)
    return out.getvalue(), dlq.getvalue(), summary


@pytest.mark.parametrize("venue", VENUES)
def test_normalize_batch_and_compiled_paths_survive_hostile_frames(venue, tmp_path, monkeypatch):
    clock = iter(range(1, 10**9))
    monkeypatch.setattr("producers.outcomes._clock", lambda: next(clock))

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hostile(venue))
    def check(frames):
        per_frame = _normalize(tmp_path, venue, frames, batch=False)
        batched = _normalize(tmp_path, venue, frames, batch=True)
        assert batched[0] == per_frame[0]  # the same ticks
        assert batched[2].dead_letters == per_frame[2].dead_letters
        assert batched[2].frames == per_frame[2].frames == len(frames)

    check()
    assert normalize_mod.BATCH in (True, False)


@pytest.mark.parametrize("venue", ["binance", "binance-usdm"])
def test_the_reported_case_a_trade_then_the_same_trade_nested_1000_deep(venue, tmp_path, capsys):
    """The issue's reproduction: `ticktide normalize` exited 1 with a RecursionError from the batch path."""
    from ticktide.cli import main

    trade = next(f for f in SEEDS[venue] if b'@trade"' in f[:64] or b'"e":"trade"' in f)
    src = tmp_path / "frames.jsonl"
    src.write_bytes(trade + b"\n" + deep(trade, 1000) + b"\n")
    dlq = tmp_path / "dlq.jsonl"
    assert main(["normalize", "--input", str(src), "--venue", venue, "--dlq", str(dlq), "--no-validate"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 1 and "dead letters: 1" in out.err
    assert dlq.read_bytes().count(b"\n") == 1
