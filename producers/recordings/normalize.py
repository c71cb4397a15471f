"""The normalize pipeline behind ``ticktide normalize`` (the frame helpers the
adapters share live in :mod:`producers.venues.frames`).

Pipeline: :func:`normalize_frames` runs frames through an adapter and a
validator frame by frame and yields accepted ticks and dead letters;
:func:`normalize_chunks` does the same over chunks of frames with the batch
APIs (``adapter.parse_many`` when the adapter has one, ``Validator.validate_many``)
and yields ``(ticks, dead_letters)`` per chunk, with exactly the same ticks,
dead letters (in the same order) and summary counts; :func:`normalize_encoded`
yields the ticks already encoded (JSON lines), through the compiled scan of
:mod:`producers.fastpath.binance_encode` for the Binance adapters. :func:`run_normalize`
is what ``ticktide normalize`` calls (see ``producers/commands.py``); it uses
``normalize_encoded`` unless ``batch=False`` (or the module switch ``BATCH`` is
False). All paths write the same bytes (tests/unit/test_normalize_cli.py,
tests/unit/test_binance_scan.py).
"""

from __future__ import annotations

import sys
from itertools import islice
from typing import IO, Callable, Iterable, Iterator

import msgspec

from producers.outcomes import Summary, dead_letter  # noqa: F401 - Summary re-exported
from producers.venues.base import ParseResult
from schemas.events import DeadLetter, Tick

# ---------------------------------------------------------------------------
# the pipeline behind `ticktide normalize`
# ---------------------------------------------------------------------------


#: ``run_normalize`` default: the chunked batch path (False: frame by frame)
BATCH = True
#: frames per chunk on the batch path
CHUNK_SIZE = 1000


def normalize_frames(
    frames: Iterable[tuple[int, bytes]],
    adapter,
    validator=None,
    summary: Summary | None = None,
) -> Iterator[Tick | DeadLetter]:
    """Frames -> accepted ticks and dead letters (parse errors and rejections).

    Every frame is accounted for in ``summary``: it produced ticks, was
    skipped for a named reason, or became a dead letter.
    """
    s = summary if summary is not None else Summary()
    stage = f"producer:{adapter.name}"
    parse = adapter.parse
    validate = validator.validate if validator is not None else None
    for ts_recv, raw in frames:
        s.frames += 1
        result = parse(raw, ts_recv)
        if result.error is not None:
            s.parse_errors += 1
            s.dead_letters += 1
            yield dead_letter(adapter.name, stage, result.error, raw)
            continue
        if not result.ticks:
            s.skipped[result.skipped or "unspecified"] += 1
            continue
        for tick in result.ticks:
            if validate is not None:
                verdict = validate(tick)
                if verdict.accepted is None:
                    s.rejected += 1
                    s.dead_letters += 1
                    yield dead_letter(adapter.name, "validate", verdict.rejected_reason or "rejected",
                                      raw, tick.symbol)
                    continue
                tick = verdict.accepted
                if tick.flags:
                    s.flagged += 1
            s.ticks += 1
            s.ticks_by_kind[tick.kind] += 1
            yield tick


def _safe(adapter):
    """``adapter.parse`` that turns any exception into that frame's error (adapters promise never to
    raise; RecursionError or MemoryError on a hostile frame must not break that promise here)."""
    parse = adapter.parse

    def safe(raw, ts):
        try:
            return parse(raw, ts)
        except Exception as exc:  # noqa: BLE001
            return ParseResult(error=f"internal: {type(exc).__name__}: {exc}"[:500])

    return safe


def _parse_chunk(adapter, parse_many, raws, recv):
    """One chunk through the adapter: ``(ticks, owner, problems)``.

    ``owner[j]`` is the index of the frame tick ``j`` came from, or ``owner`` is
    None when every frame not in ``problems`` gave exactly one tick (then it is
    only worked out if a tick is rejected); ``problems`` is ``(index, ParseResult)``
    for every frame that gave no tick, in frame order, as ``parse_many`` reports them.
    """
    n = len(raws)
    if parse_many is not None:
        problems: list = []
        try:
            ticks = parse_many(raws, recv, problems)
        except Exception:  # noqa: BLE001 - one hostile frame must not cost the chunk: frame by frame below
            ticks = None
        if ticks is not None and len(ticks) == n - len(problems):
            return ticks, None, problems
        # some frame gave several ticks (or the batch failed): redo the chunk frame by frame
        # (parse is pure, so this gives the same ticks)
    ticks = []
    owner: list[int] = []
    problems = []
    parse = _safe(adapter)
    for i in range(n):
        res = parse(raws[i], recv[i])
        if res.error is None and res.ticks:
            ticks.extend(res.ticks)
            owner.extend([i] * len(res.ticks))
        else:
            problems.append((i, res))
    return ticks, owner, problems


def normalize_chunks(
    frames: Iterable[tuple[int, bytes]],
    adapter,
    validator=None,
    summary: Summary | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[tuple[list[Tick], list[DeadLetter]]]:
    """:func:`normalize_frames` over chunks of ``chunk_size`` frames with the batch APIs.

    Yields ``(accepted ticks, dead letters)`` per chunk: concatenated, exactly the
    ticks and (in the same order) the dead letters that :func:`normalize_frames`
    yields, and ``summary`` ends up the same. Frames are parsed with
    ``adapter.parse_many`` when the adapter has one (else ``parse`` frame by frame)
    and validated with ``validator.validate_many``.
    """
    s = summary if summary is not None else Summary()
    for raws, recv in _chunks(frames, chunk_size, s):
        yield normalize_chunk(adapter, validator, raws, recv, s)


def _chunks(frames: Iterable[tuple[int, bytes]], chunk_size: int, s: Summary):
    """``(raws, receive times)`` per chunk of ``chunk_size`` frames, counted in ``s.frames``."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    it = iter(frames)
    while True:
        chunk = list(islice(it, chunk_size))
        if not chunk:
            return
        s.frames += len(chunk)
        yield [f[1] for f in chunk], [f[0] for f in chunk]


def normalize_chunk(adapter, validator, raws: list, recv: list,
                    s: Summary) -> tuple[list[Tick], list[DeadLetter]]:
    """One chunk of frames (``raws`` with receive times ``recv``) through the batch
    APIs: ``(accepted ticks, dead letters)``; ``s`` counts everything but frames."""
    name = adapter.name
    stage = f"producer:{name}"
    ticks, owner, problems = _parse_chunk(adapter, getattr(adapter, "parse_many", None), raws, recv)

    # dead letters as (frame index, tick index or -1, stage, reason, key), sorted below
    letters: list[tuple] = []
    if problems:
        problems.sort(key=lambda p: p[0])
        skipped = s.skipped
        for i, res in problems:
            if res.error is not None:
                s.parse_errors += 1
                letters.append((i, -1, stage, res.error, None))
            else:
                skipped[res.skipped or "unspecified"] += 1

    if validator is not None and ticks:
        vproblems: list = []
        accepted = validator.validate_many(ticks, vproblems)
        rejected = [(j, v) for j, v in vproblems if v.accepted is None]
        if rejected:
            if owner is None:
                bad = {i for i, _ in problems}
                owner = [i for i in range(len(raws)) if i not in bad]
            for j, v in rejected:
                letters.append((owner[j], j, "validate", v.rejected_reason or "rejected",
                                ticks[j].symbol))
            s.rejected += len(rejected)
        s.flagged += len(accepted) - [t.flags for t in accepted].count([])
    else:
        accepted = ticks
    s.ticks += len(accepted)
    s.ticks_by_kind.update([t.kind for t in accepted])

    dead: list[DeadLetter] = []
    if letters:
        letters.sort(key=lambda x: (x[0], x[1]))
        s.dead_letters += len(letters)
        for i, _, st, reason, key in letters:
            dead.append(dead_letter(name, st, reason, raws[i], key))
    return accepted, dead


def normalize_encoded(
    frames: Iterable[tuple[int, bytes]],
    adapter,
    validator=None,
    summary: Summary | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[tuple[bytes, list[DeadLetter]]]:
    """:func:`normalize_chunks` with the accepted ticks already encoded: yields
    ``(JSON lines, dead letters)`` per chunk, byte for byte the encoding of what
    it yields. Adapters with ``trade_scan`` (Binance spot and USD-M) take their
    trade and bookTicker frames through the compiled scan (:mod:`producers.fastpath.binance_encode`)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    s = summary if summary is not None else Summary()
    encoder = None
    if getattr(adapter, "trade_scan", False):
        from producers.fastpath.binance_encode import ChunkEncoder
        encoder = ChunkEncoder(adapter, validator, normalize_chunk)
    lines = _lines_encoder()
    for raws, recv in _chunks(frames, chunk_size, s):
        if encoder is not None:
            yield encoder.encode_chunk(raws, recv, s)
        else:
            ticks, dead = normalize_chunk(adapter, validator, raws, recv, s)
            yield (lines(ticks) if ticks else b""), dead


def _lines_encoder() -> Callable[[list], bytes]:
    """One call per chunk: ``encode_lines`` (msgspec >= 0.19), else ``encode_into`` in a loop."""
    enc = msgspec.json.Encoder()
    encode_lines = getattr(enc, "encode_lines", None)
    if encode_lines is not None:
        return encode_lines
    encode_into = enc.encode_into

    def lines(items: list) -> bytes:  # pragma: no cover - older msgspec only
        buf = bytearray()
        for item in items:
            encode_into(item, buf, -1)
            buf += b"\n"
        return bytes(buf)

    return lines


def run_normalize(
    path: str,
    venue: str,
    out: IO[bytes],
    dlq: IO[bytes] | None = None,
    rules: str | None = None,
    validate: bool = True,
    plain_clock: str = "now",
    batch: bool | None = None,
    chunk_size: int | None = None,
) -> Summary:
    """Read a recording, write canonical ticks (JSON lines) to ``out``.

    ``batch`` (default: the module's ``BATCH``): chunks of ``chunk_size`` frames
    (default ``CHUNK_SIZE``) through :func:`normalize_chunks`, one encode per
    chunk; False: frame by frame through :func:`normalize_frames`. The output
    and summary are the same either way.
    """
    from producers.recordings.readers import ReadStats, read_frames
    from producers.validation import Validator
    from producers.venues import get_adapter

    adapter = get_adapter(venue)
    validator = Validator.from_file(rules) if validate else None
    stats = ReadStats()
    summary = Summary()
    write = out.write
    dlq_write = dlq.write if dlq is not None else None
    frames = read_frames(path, stats=stats, plain_clock=plain_clock)
    if BATCH if batch is None else batch:
        lines = _lines_encoder()
        for encoded, dead in normalize_encoded(frames, adapter, validator, summary,
                                               chunk_size or CHUNK_SIZE):
            if encoded:
                write(encoded)
            if dead and dlq_write is not None:
                dlq_write(lines(dead))
    else:
        encode = msgspec.json.Encoder().encode
        for item in normalize_frames(frames, adapter, validator, summary):
            if type(item) is Tick:
                write(encode(item) + b"\n")
            elif dlq_write is not None:
                dlq_write(encode(item) + b"\n")
    summary.reader = stats.to_dict()
    if validator is not None:
        from dataclasses import asdict
        summary.quality = [asdict(q) for q in validator.quality().values()]
    return summary


def format_summary(summary: Summary, venue: str, path: str, dlq_path: str | None) -> str:
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(summary.ticks_by_kind.items())) or "none"
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(summary.skipped.items())) or "none"
    r = summary.reader
    lines = [
        f"normalize {venue} {path}",
        f"  lines read: {r.get('lines', 0)} (format {r.get('format', '?')}; "
        f"not websocket frames: {r.get('snapshots', 0)} REST snapshot, "
        f"{r.get('outgoing', 0)} outgoing, {r.get('headers', 0)} header, {r.get('blank', 0)} blank; "
        f"malformed lines passed on as frames: {r.get('malformed', 0)})",
        f"  frames: {summary.frames}",
        f"  ticks written: {summary.ticks} ({kinds}); flagged: {summary.flagged}",
        f"  skipped frames: {sum(summary.skipped.values())} ({skipped})",
        f"  dead letters: {summary.dead_letters} (parse errors {summary.parse_errors}, "
        f"rejected by validation {summary.rejected})"
        + (f" -> {dlq_path}" if dlq_path else " (not written: pass --dlq FILE to keep them)"),
    ]
    return "\n".join(lines)


def main_stdout() -> IO[bytes]:  # pragma: no cover - trivial
    return sys.stdout.buffer
