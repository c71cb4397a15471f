"""Benchmark of the signals consumer: per-row rules vs the columnar path (not a test).

    PYTHONPATH=. .venv/bin/python bench/bench_signals.py [--repeats 5]

Measures, in one run and on the same inputs (real data from tests/data run
through the features consumer: the 9,757 BTCUSDT trades of 2024-08-09 and
the daily closes of 20 US equities, 1990-2018), microseconds per
FeatureVector for batches of 50 and 1,000 vectors:

* decoded: the batch already decoded; per row = ``SignalsProcessor.process``
  (``SignalEngine.on_features`` per vector) plus encoding each signal and
  its key as the runner does; columnar = ``process_columns`` (encoded
  outputs);
* from JSON bytes: what the consumer does per fetched batch; per row =
  ``decode_records`` + an Envelope per message + the above; columnar =
  ``decode_columns`` + ``process_columns``.

Default config (all five rules; cooldown 300 s, and 0 s to show many
signals), partitioned by symbol over the 6 partitions of features.v1. The
ratio is per-row time / columnar time, both measured in this run; the best
of ``--repeats`` passes over the whole input. The outputs of both paths are
checked equal.
"""

from __future__ import annotations

import argparse
import gc
import platform
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.signals.config import SignalsConfig  # noqa: E402
from consumers.signals.processor import SignalsProcessor  # noqa: E402
from schemas.topics import FEATURES, SIGNALS  # noqa: E402
from streaming.batch import Columns, decode_columns, decode_records  # noqa: E402
from streaming.bus.base import Record  # noqa: E402
from streaming.bus.memory import partition_for  # noqa: E402
from streaming.codec import encode, key_for  # noqa: E402
from streaming.processor import Envelope  # noqa: E402
from tests.real_features import btcusdt_vectors, daily_vectors  # noqa: E402


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def records_of(vectors) -> list[Record]:
    offsets: dict[int, int] = {}
    out = []
    for v in vectors:
        key = v.symbol.encode()
        p = partition_for(key, FEATURES.partitions, 0)
        offsets[p] = offsets.get(p, -1) + 1
        out.append(Record(FEATURES.name, p, offsets[p], key, encode(v)))
    return out


def batches_of(records: list[Record], size: int) -> list[tuple[list[Record], Columns, list]]:
    """Per batch of ``size``: what a fetch hands the runner (grouped by partition, in offset order per
    partition) as Records and as Columns, and the decoded events. Built once, outside the timing."""
    out = []
    for lo in range(0, len(records), size):
        chunk = records[lo:lo + size]
        recs = sorted(chunk, key=lambda r: r.partition)  # stable: offset order within a partition
        events, errors = decode_records(recs)
        assert not errors
        out.append((recs, Columns.from_records(recs), events))
    return out


def per_row(proc: SignalsProcessor, recs: list[Record], cols: Columns, events: list | None) -> list[bytes]:
    if events is None:  # from bytes: as the runner's Envelope path decodes
        events, _ = decode_records(recs)
    envs = [Envelope(r.topic, r.partition, r.offset, r.key, e) for r, e in zip(recs, events)]
    res = proc.process(envs)
    keys = [key_for(o.topic, o.event) for o in res.outputs]  # noqa: F841 - the runner's work
    return [encode(o.event) for o in res.outputs]


def columnar(proc: SignalsProcessor, recs: list[Record], cols: Columns, events: list | None) -> list[bytes]:
    if events is None:
        decode_columns(cols)
    else:
        cols.events = events
    res = proc.process_columns(cols)
    cols.events = None  # the runner drops a batch once handled (else every decoded batch stays in memory)
    return [v for out in res.outputs for v in out.values]


def timed(path, config: SignalsConfig, batches, from_bytes: bool, repeats: int) -> tuple[float, list[bytes]]:
    """Best ns per vector over ``repeats`` passes, each with a fresh processor; and the outputs."""
    n = sum(len(r) for r, _, _ in batches)
    best, outputs = float("inf"), []
    for _ in range(repeats):
        proc = SignalsProcessor(config, clock=lambda: 0)
        outputs = []
        gc.collect()
        gc.disable()
        t0 = time.perf_counter_ns()
        for recs, cols, events in batches:
            outputs += path(proc, recs, cols, None if from_bytes else events)
        best = min(best, (time.perf_counter_ns() - t0) / n)
        gc.enable()
    return best, outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="passes per measurement (the best counts)")
    args = ap.parse_args()
    inputs = {"BTCUSDT trades (1 symbol)": btcusdt_vectors(), "daily closes (20 symbols)": daily_vectors()}
    print("# ticktide signals benchmark: per-row rules vs columnar path\n")
    print(f"python {platform.python_version()}, numpy {np.__version__}, msgspec {msgspec.__version__}, "
          f"cpu: {cpu_model()}, single thread, best of {args.repeats}")
    for name, vectors in inputs.items():
        print(f"input: {name}: {len(vectors)} FeatureVectors ({len(vectors[0].values)} features each), "
              f"{len(encode(vectors[0]))} bytes of JSON each")
    print("config: default SignalsConfig (5 rules), no plug-ins; features.v1 partitioned by symbol "
          f"({FEATURES.partitions} partitions)\n")
    print("| input | cooldown | batch | stage | per row µs/vector | columnar µs/vector | ratio | signals |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, vectors in inputs.items():
        records = records_of(vectors)
        for cooldown in (300.0, 0.0):
            config = SignalsConfig.from_mapping({"cooldown_s": cooldown})
            for size in (50, 1000):
                batches = batches_of(records, size)
                for from_bytes in (False, True):
                    row_ns, row_out = timed(per_row, config, batches, from_bytes, args.repeats)
                    col_ns, col_out = timed(columnar, config, batches, from_bytes, args.repeats)
                    assert row_out == col_out, "the columnar path's signals differ from the per-row ones"
                    stage = "from JSON bytes" if from_bytes else "decoded"
                    print(f"| {name} | {cooldown:g} s | {size} | {stage} | {row_ns / 1e3:.2f} | "
                          f"{col_ns / 1e3:.2f} | {row_ns / col_ns:.1f}x | {len(col_out)} |")
    print("\nratio: per-row time / columnar time, same batches, same run. "
          f"check: the {SIGNALS.name} bytes of both paths are equal in every row above.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
