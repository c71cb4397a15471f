"""``ticktide signals --input FEATURES.jsonl``: the signals consumer without a bus.

Input: JSON lines, either

- what ``ticktide features --format jsonl`` writes: ``symbol``, ``ts`` and one
  key per feature (optionally ``seq``, ``price``, ``source``, ``ts_ingest``);
  or
- FeatureVector JSON (``values`` holds the features), e.g. a dump of
  features.v1 from ``ticktide subscribe features.v1``.

``ts``/``ts_event``: integer nanoseconds (smaller integers are read as s, ms
or us by magnitude), float seconds, or an ISO-8601 string. Without ``seq``
the rows of a symbol are numbered 1, 2, ... (the features consumer's
``seq``). Without ``price`` the rules fall back to ``mid``.

Output: one Signal JSON line per signal, in input order. The vectors go
through ``SignalsProcessor.process`` exactly as in the live consumer (same
partitioning by symbol, same per-partition engines), so the signals are the
live ones except for ``ts_proc`` (wall clock).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import IO, Iterable, Iterator

import msgspec

from consumers.signals.config import SignalsConfig
from consumers.signals.processor import SignalsProcessor
from schemas.events import FeatureVector, Signal
from schemas.topics import FEATURES
from streaming.bus.memory import partition_for
from streaming.commandline import CommandError, add_config_option, add_input_option
from streaming.config import config_error
from streaming.processor import Envelope

META_KEYS = {"symbol", "ts", "ts_event", "ts_ingest", "ts_proc", "seq", "source", "price", "venue", "kind"}
_fv_decoder = msgspec.json.Decoder(FeatureVector)


def to_ns(ts) -> int:
    if isinstance(ts, bool) or ts is None:
        raise ValueError(f"bad timestamp {ts!r}")
    if isinstance(ts, int):
        a = abs(ts)
        if a < 10**11:
            return ts * 10**9
        if a < 10**14:
            return ts * 10**6
        if a < 10**17:
            return ts * 10**3
        return ts
    if isinstance(ts, float):
        return to_ns(int(ts)) if abs(ts) >= 10**11 else int(round(ts * 1e9))
    if isinstance(ts, str):
        s = ts.strip()
        if s.lstrip("-").isdigit():
            return to_ns(int(s))
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.timezone.utc)
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    raise ValueError(f"bad timestamp {ts!r}")


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[FeatureVector]:
    """FeatureVectors from JSON lines of either format (see the module docstring)."""
    counters: dict[str, int] = {}
    last_ts: dict[str, tuple[int, int, bool]] = {}  # symbol -> (ts_event, line, is a bar)
    for n, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode()
        line = line.strip()
        if not line:
            continue
        try:
            row = msgspec.json.decode(line)
            if not isinstance(row, dict) or "symbol" not in row:
                raise ValueError("not an object with a symbol")
            symbol = str(row["symbol"])
            if row.get("kind") == "quote":
                continue  # the live features consumer publishes no vector for a quote (emit_quotes=False)
            seq = counters.get(symbol, 0) + 1
            if isinstance(row.get("values"), dict):
                fv = _fv_decoder.decode(line)
            else:
                ts = row.get("ts_event", row.get("ts"))
                values = {k: (None if v is None else float(v)) for k, v in row.items()
                          if k not in META_KEYS and (v is None or isinstance(v, (int, float)))}
                price = row.get("price")
                fv = FeatureVector(
                    symbol=symbol, ts_event=to_ns(ts), ts_ingest=int(row.get("ts_ingest") or 0),
                    ts_proc=int(row.get("ts_proc") or 0), seq=int(row.get("seq") or seq),
                    source=_source(row),
                    price=None if price is None else float(price), values=values)
        except (ValueError, TypeError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"line {n}: {exc} (each line must be a JSON object with symbol, ts and features, "
                             "as ticktide features writes)") from None
        _check_order(fv, n, last_ts)
        counters[symbol] = fv.seq
        yield fv


def _check_order(fv: FeatureVector, line: int, last_ts: dict[str, tuple[int, int, bool]]) -> None:
    """A symbol's bars go forward in time, one per date (cooldowns and crossings depend on it).
    Tick-derived rows are taken in file order, as the live consumer takes them in arrival order."""
    prev = last_ts.get(fv.symbol)
    is_bar = fv.source == "bar"
    if prev is not None and is_bar and prev[2]:
        if fv.ts_event < prev[0]:
            raise ValueError(f"line {line}: {fv.symbol} goes back in time from line {prev[1]} "
                             "(sort the input by time, e.g. ticktide features sorts a CSV)")
        if fv.ts_event == prev[0]:
            raise ValueError(f"line {line}: duplicate bar for {fv.symbol} at the time of line {prev[1]} "
                             "(keep one row per symbol and date)")
    last_ts[fv.symbol] = (fv.ts_event, line, is_bar)


def _source(row: dict) -> str:
    if row.get("source") in ("tick", "bar"):
        return row["source"]
    return "bar" if row.get("kind") == "bar" else "tick"


def run_offline(vectors: Iterable[FeatureVector], processor: SignalsProcessor,
                batch_size: int = 1000) -> Iterator[Signal]:
    """Drive the live processor with the vectors, partitioned as features.v1 would be."""
    batch: list[Envelope] = []
    offsets: dict[int, int] = {}

    def flush() -> Iterator[Signal]:
        result = processor.process(batch)
        if result.rejected:
            raise ValueError(result.rejected[0][1])
        for out in result.outputs:
            yield out.event
        batch.clear()

    for fv in vectors:
        key = fv.symbol.encode()
        p = partition_for(key, FEATURES.partitions, 0)
        offsets[p] = offsets.get(p, -1) + 1
        batch.append(Envelope(FEATURES.name, p, offsets[p], key, fv))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def signals_for_file(path: str, config: SignalsConfig | None = None) -> list[Signal]:
    with open(path, "rb") as f:
        return list(run_offline(parse_lines(f), SignalsProcessor(config)))


def cmd_signals(args: argparse.Namespace) -> int:
    try:
        processor = SignalsProcessor(SignalsConfig.load(args.config))
    except (ValueError, TypeError, msgspec.MsgspecError) as exc:
        raise CommandError(config_error(args.config, exc), "fix the file; see "
                           "consumers/signals/signals.example.toml") from None
    out: IO[bytes] = sys.stdout.buffer if args.output in (None, "-") else open(args.output, "wb")
    enc = msgspec.json.Encoder()
    src = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    count = 0
    try:
        for sig in run_offline(parse_lines(src), processor):
            out.write(enc.encode(sig) + b"\n")
            count += 1
        out.flush()
    except ValueError as exc:
        print(f"ticktide signals: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"ticktide signals: {args.input} is not UTF-8 text (byte {exc.start}) (give the JSON lines of "
              "ticktide features)", file=sys.stderr)
        return 2
    finally:
        if src is not sys.stdin.buffer:
            src.close()
        if out is not sys.stdout.buffer:
            out.close()
    print(f"{count} signals", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("signals", help="run the signal rules over a features JSON-lines file and print signals",
                       description="Run the signals consumer's rules and plug-ins over feature vectors (the JSON "
                                   "lines of `ticktide features`, or a dump of features.v1) and print one Signal "
                                   "JSON line per signal. Each symbol's bars must go forward in time, one per date.")
    add_input_option(p, "features JSON lines (ticktide features --format jsonl), - for stdin")
    add_config_option(p, "signals config (TOML), e.g. consumers/signals/signals.example.toml")
    p.add_argument("--output", default=None, help="write signals here instead of stdout")
    p.set_defaults(func=cmd_signals)
