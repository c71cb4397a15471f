"""Canonical-form helpers shared by the venue adapters, and the normalize pipeline.

Helpers (pure, exact, never float-rounded):

- :func:`canonical_symbol`: upper case, separators removed (``BTC-USD`` ->
  ``BTCUSD``, ``XBT/USD`` -> ``XBTUSD``). Venue base names are kept as the
  venue spells them (Kraken v1 ``XBT`` stays ``XBTUSD`` while Kraken v2 says
  ``BTC/USD`` -> ``BTCUSD``); mapping aliases across venues is a downstream
  concern.
- :func:`iso8601_to_ns`: ``2021-04-17T16:43:30.244075Z`` -> ns, exactly, with
  up to 9 fractional digits (more are truncated).
- :func:`decimal_seconds_to_ns`: ``"1618678142.557535"`` -> ns via ``Decimal``.
- :func:`decimal_str_to_float`: a venue decimal string -> float, rejecting
  anything that is not a plain finite decimal (``nan``, ``inf``, ``1_0``...).
- :func:`decode_json`, :func:`never_raises` (the ``parse`` guard that turns
  any exception into a dead-letter result) and :func:`split_pair` (canonical
  symbol -> the venue's ``BASE<sep>QUOTE``).

Pipeline: :func:`normalize_frames` runs frames through an adapter and a
validator frame by frame and yields accepted ticks and dead letters;
:func:`normalize_chunks` does the same over chunks of frames with the batch
APIs (``adapter.parse_many`` when the adapter has one, ``Validator.validate_many``)
and yields ``(ticks, dead_letters)`` per chunk, with exactly the same ticks,
dead letters (in the same order) and summary counts. :func:`run_normalize` is
what ``ticktide normalize`` calls (see ``producers/commands.py``); it uses the
chunked path unless ``batch=False`` (or the module switch ``BATCH`` is False).
"""

from __future__ import annotations

import functools
import re
import sys
import time
from itertools import islice
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Callable, Iterable, Iterator

import msgspec

from producers.base import ParseResult
from schemas.events import DeadLetter, Tick

# ---------------------------------------------------------------------------
# helpers used by the adapters
# ---------------------------------------------------------------------------

MAX_NS = 2**63 - 1
_SEPARATORS = re.compile(r"[-/_:. ]")
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BadFrame(Exception):
    """Raised inside adapters for a frame that must be dead-lettered; never escapes parse."""


def canonical_symbol(venue_symbol: str) -> str:
    if type(venue_symbol) is not str or not venue_symbol:
        raise BadFrame("missing or non-string symbol")
    sym = _SEPARATORS.sub("", venue_symbol).upper()
    if not sym or not sym.isalnum():
        raise BadFrame(f"bad symbol {venue_symbol!r}")
    return sym


def decimal_str_to_float(raw: object, what: str = "number") -> float:
    """Venue decimal (string, or JSON number already decoded) -> finite float."""
    t = type(raw)
    if t is str:
        if not _DECIMAL.fullmatch(raw):  # type: ignore[arg-type]
            raise BadFrame(f"bad {what} {raw!r}")
        value = float(raw)  # type: ignore[arg-type]
    elif t is float or t is int:
        value = float(raw)  # type: ignore[arg-type]
    else:
        raise BadFrame(f"bad {what} type {t.__name__}")
    if value - value != 0.0:  # inf or nan
        raise BadFrame(f"non-finite {what} {raw!r}")
    return value


def check_ns(value: int, what: str = "timestamp") -> int:
    if type(value) is not int or value < 0 or value > MAX_NS:
        raise BadFrame(f"bad {what} {value!r}")
    return value


def check_seq(value: object, what: str = "sequence") -> int:
    """A venue id/sequence number that fits in int64 (what every consumer can store)."""
    if type(value) is not int or value < 0 or value > MAX_NS:
        raise BadFrame(f"bad {what} {value!r}")
    return value  # type: ignore[return-value]


def ms_to_ns(ms: object, what: str = "timestamp") -> int:
    if type(ms) is not int or ms < 0 or ms > MAX_NS // 1_000_000:
        raise BadFrame(f"bad {what} {ms!r}")
    return ms * 1_000_000  # type: ignore[operator]


def decimal_seconds_to_ns(raw: object, what: str = "timestamp") -> int:
    """Epoch seconds with a fraction (string or number) -> ns, exact for strings."""
    if type(raw) is float:
        raw = repr(raw)
    if type(raw) is int:
        raw = str(raw)
    if type(raw) is not str or not _DECIMAL.fullmatch(raw):
        raise BadFrame(f"bad {what} {raw!r}")
    try:
        ns = int(Decimal(raw).scaleb(9))
    except (InvalidOperation, ValueError, OverflowError):
        raise BadFrame(f"bad {what} {raw!r}") from None
    return check_ns(ns, what)


def iso8601_to_ns(raw: object, what: str = "time") -> int:
    """RFC 3339 / ISO 8601 UTC time -> ns since epoch, exactly (no float)."""
    if type(raw) is not str:
        raise BadFrame(f"bad {what} {raw!r}")
    m = _ISO.fullmatch(raw)
    if m is None:
        raise BadFrame(f"bad {what} {raw!r}")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), tzinfo=timezone.utc)
    except ValueError:
        raise BadFrame(f"bad {what} {raw!r}") from None
    delta = dt - _EPOCH
    secs = delta.days * 86_400 + delta.seconds
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        secs -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    ns = secs * 1_000_000_000
    if frac:
        ns += int(frac[:9].ljust(9, "0"))
    return check_ns(ns, what)


def as_bytes(frame: bytes | bytearray | memoryview | str) -> bytes:
    t = type(frame)
    if t is bytes:
        return frame  # type: ignore[return-value]
    if t is str:
        return frame.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    if t is bytearray or t is memoryview:
        return bytes(frame)  # type: ignore[arg-type]
    raise BadFrame(f"frame is {t.__name__}, not bytes or str")


_json_decoder = msgspec.json.Decoder()


def decode_json(frame: bytes | bytearray | memoryview | str) -> Any:
    """A frame's JSON value; undecodable JSON is a BadFrame."""
    try:
        return _json_decoder.decode(as_bytes(frame))
    except msgspec.DecodeError as exc:
        raise BadFrame(f"undecodable JSON: {exc}") from None


def never_raises(parse: Callable[..., ParseResult]) -> Callable[..., ParseResult]:
    """Wrap an adapter's ``parse``: a BadFrame, or any other exception, becomes ``ParseResult(error=...)``."""

    @functools.wraps(parse)
    def guarded(self, frame, ts_recv: int) -> ParseResult:
        try:
            return parse(self, frame, ts_recv)
        except BadFrame as exc:
            return ParseResult(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - parse never raises
            return ParseResult(error=f"internal: {type(exc).__name__}: {exc}")

    return guarded


def split_pair(symbol: str, sep: str, quotes: Iterable[str], what: str) -> str:
    """A venue pair from a symbol: ``BTC<sep>USD`` stays (upper-cased); canonical
    ``BTCUSD`` -> ``BTC<sep>USD`` by the first of ``quotes`` it ends with."""
    if sep in symbol:
        return symbol.upper()
    s = symbol.upper()
    for q in quotes:
        if s.endswith(q) and len(s) > len(q):
            return f"{s[: -len(q)]}{sep}{q}"
    raise ValueError(f"cannot split {symbol!r} into {what}; pass BASE{sep}QUOTE")


# ---------------------------------------------------------------------------
# the pipeline behind `ticktide normalize`
# ---------------------------------------------------------------------------


@dataclass
class Summary:
    frames: int = 0
    ticks: int = 0
    ticks_by_kind: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # reason -> frames
    parse_errors: int = 0
    rejected: int = 0  # ticks rejected by validation
    flagged: int = 0  # ticks accepted with at least one flag
    dead_letters: int = 0
    reader: dict = field(default_factory=dict)  # counters from the recording reader
    quality: list = field(default_factory=list)  # per-symbol quality dicts (when validated)

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "ticks": self.ticks,
            "ticks_by_kind": dict(self.ticks_by_kind),
            "skipped": dict(self.skipped),
            "parse_errors": self.parse_errors,
            "rejected": self.rejected,
            "flagged": self.flagged,
            "dead_letters": self.dead_letters,
            "reader": self.reader,
            "quality": self.quality,
        }


#: stamps ``DeadLetter.ts_proc`` (a hook so tests can make dead letters reproducible)
_clock = time.time_ns

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
            yield DeadLetter(stage=stage, reason=result.error, raw=_raw_bytes(raw),
                             ts_proc=_clock(), venue=adapter.name)
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
                    yield DeadLetter(stage="validate", reason=verdict.rejected_reason or "rejected",
                                     raw=_raw_bytes(raw), ts_proc=_clock(),
                                     venue=adapter.name, key=tick.symbol)
                    continue
                tick = verdict.accepted
                if tick.flags:
                    s.flagged += 1
            s.ticks += 1
            s.ticks_by_kind[tick.kind] += 1
            yield tick


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
        ticks = parse_many(raws, recv, problems)
        if len(ticks) == n - len(problems):
            return ticks, None, problems
        # some frame gave several ticks: redo the chunk frame by frame to know which
        # (parse is pure, so this gives the same ticks)
    ticks = []
    owner: list[int] = []
    problems = []
    parse = adapter.parse
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
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    s = summary if summary is not None else Summary()
    name = adapter.name
    stage = f"producer:{name}"
    parse_many = getattr(adapter, "parse_many", None)
    validate_many = validator.validate_many if validator is not None else None
    it = iter(frames)
    while True:
        chunk = list(islice(it, chunk_size))
        if not chunk:
            return
        recv = [f[0] for f in chunk]
        raws = [f[1] for f in chunk]
        s.frames += len(chunk)
        ticks, owner, problems = _parse_chunk(adapter, parse_many, raws, recv)

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

        if validate_many is not None and ticks:
            vproblems: list = []
            accepted = validate_many(ticks, vproblems)
            rejected = [(j, v) for j, v in vproblems if v.accepted is None]
            if rejected:
                if owner is None:
                    bad = {i for i, _ in problems}
                    owner = [i for i in range(len(chunk)) if i not in bad]
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
                dead.append(DeadLetter(stage=st, reason=reason, raw=_raw_bytes(raws[i]),
                                       ts_proc=_clock(), venue=name, key=key))
        yield accepted, dead


def _raw_bytes(raw) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogatepass")
    return bytes(raw)


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
    from producers.recordings import ReadStats, read_frames
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
        for ticks, dead in normalize_chunks(frames, adapter, validator, summary,
                                            chunk_size or CHUNK_SIZE):
            if ticks:
                write(lines(ticks))
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
