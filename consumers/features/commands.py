"""``ticktide features``: the offline twin of the features consumer, same kernels."""

from __future__ import annotations

import argparse
import csv
import logging
import sys

import msgspec
import numpy as np

from streaming.commandline import add_config_option, add_input_option
from streaming.config import config_error

log = logging.getLogger("ticktide.features")

CHUNK = 65536


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "features",
        help="compute rolling features offline from ticks (JSON lines) or a bars/close-price CSV",
        description=(
            "Compute the features.v1 rolling features over a file with the same Numba kernels "
            "as the consumer. FILE is canonical ticks as JSON lines (ticktide normalize), a long "
            "bars CSV (ts,symbol,open,high,low,close,volume) or a wide close-price CSV (date plus "
            "one column per symbol, empty cells skipped). Writes one record per input row "
            "(symbol, ts, price and every feature; null until its window is full) to stdout."
        ),
    )
    add_input_option(p, "ticks JSON lines, bars CSV or wide close CSV (.gz ok, - for stdin)")
    add_config_option(p, "FeatureConfig as TOML or JSON")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)")
    p.add_argument("--output", "-o", metavar="FILE", default="-", help="write here instead of stdout")
    p.set_defaults(func=run)


def _fmt(v: float) -> str:
    return "" if v != v else repr(v)


def run(args: argparse.Namespace) -> int:
    # the kernels (Numba) load here, not when the CLI registers its commands
    from consumers.features.inputs import InputError, read_input
    from streaming.kernels.config import FeatureConfig
    from streaming.kernels.engine import FeatureEngine
    from streaming.kernels.layout import KIND_QUOTE

    try:
        config = FeatureConfig.load(args.config) if args.config else FeatureConfig()
    except (OSError, ValueError, msgspec.MsgspecError) as exc:
        print(f"ticktide features: {config_error(args.config, exc)} (fix the file)", file=sys.stderr)
        return 2
    try:
        table = read_input(args.input)
    except InputError as exc:
        print(f"ticktide features: {exc}", file=sys.stderr)
        return 2
    if not len(table):
        print(f"ticktide features: no usable rows in {args.input} ({'; '.join(table.reasons) or 'empty'})",
              file=sys.stderr)
        return 2
    for note in table.notes:
        print(f"ticktide features: {note}", file=sys.stderr)
    if table.skipped:
        log.warning("skipped %d unusable input rows, e.g. %s", table.skipped, "; ".join(table.reasons))
    engine = FeatureEngine(config)
    names = engine.names
    mid_col = names.index("mid")
    rowmap: dict[str, int] = {}
    rows = np.fromiter((rowmap.get(s) if s in rowmap else rowmap.setdefault(s, engine.add_symbol(s))
                        for s in table.symbols), dtype=np.int64, count=len(table))
    kinds, x1, x2 = table.arrays()
    out_f = sys.stdout if args.output == "-" else open(args.output, "w", newline="", encoding="utf-8")
    try:
        if args.format == "csv":
            w = csv.writer(out_f, lineterminator="\n")
            w.writerow(["symbol", "ts", "kind", "seq", "price", *names])
        else:
            enc = msgspec.json.Encoder()
            keys = ["symbol", "ts", "kind", "seq", "price", *names]
        price_kind = "trade" if table.format == "ticks" else "bar"
        # seq as in FeatureVector.seq: trades (or bars) of this symbol so far; a quote repeats it
        seq_of: dict[str, int] = {}
        for start in range(0, len(table), CHUNK):
            stop = min(start + CHUNK, len(table))
            out = engine.update(kinds[start:stop], rows[start:stop], x1[start:stop], x2[start:stop])
            vals = out.tolist()
            # the vector's price, as in FeatureVector.price: trade price / close, mid for a quote
            prices = np.where(kinds[start:stop] == KIND_QUOTE, out[:, mid_col], x1[start:stop]).tolist()
            is_quote = (kinds[start:stop] == KIND_QUOTE).tolist()
            meta = []
            for i in range(stop - start):
                sym = table.symbols[start + i]
                if not is_quote[i]:
                    seq_of[sym] = seq_of.get(sym, 0) + 1
                meta.append(("quote" if is_quote[i] else price_kind, seq_of.get(sym, 0)))
            if args.format == "csv":
                w.writerows(
                    [table.symbols[start + i], table.ts[start + i], *meta[i], _fmt(prices[i]), *map(_fmt, v)]
                    for i, v in enumerate(vals)
                )
            else:
                buf = bytearray()
                for i, v in enumerate(vals):
                    rec = dict(zip(keys, [table.symbols[start + i], table.ts[start + i], *meta[i], prices[i],
                                          *[x if x == x else None for x in v]]))
                    buf += enc.encode(rec)
                    buf += b"\n"
                out_f.write(buf.decode())
        out_f.flush()
    finally:
        if out_f is not sys.stdout:
            out_f.close()
    log.info("features: %d rows (%s input, %d symbols, %d skipped)", len(table), table.format,
             len(rowmap), table.skipped)
    return 0
