"""``ticktide`` subcommands of the producers area.

``register(sub)`` adds ``normalize`` and then any optional command modules
in ``EXTRA_COMMAND_MODULES`` that exist (e.g. ``producers.live_commands`` with
``replay``/``simulator``/``ingest``); each such module exposes its own
``register(sub)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

EXTRA_COMMAND_MODULES = ("producers.live_commands",)


def register(sub: argparse._SubParsersAction) -> None:
    _register_normalize(sub)
    for name in EXTRA_COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not written yet
            raise
        module.register(sub)


def _register_normalize(sub: argparse._SubParsersAction) -> None:
    from producers.venues import available

    p = sub.add_parser(
        "normalize",
        help="normalize a recorded websocket session into canonical ticks (JSON lines on stdout)",
        description="Read a recording (hftbacktest, cryptofeed or one-JSON-frame-per-line; gzip "
        "detected), parse every frame with the venue adapter, validate, and write canonical "
        "ticks as JSON lines to stdout. A summary goes to stderr; dead letters (unparseable "
        "frames, rejected ticks) go to --dlq as DeadLetter JSON lines.",
    )
    p.add_argument("file", metavar="FILE", help="recording to read")
    p.add_argument("--venue", required=True, choices=available(), help="venue adapter to parse with")
    p.add_argument("--dlq", metavar="FILE", help="write dead letters (DeadLetter JSON lines) here")
    p.add_argument("--output", "-o", metavar="FILE", help="write ticks here instead of stdout")
    p.add_argument("--rules", metavar="TOML", help="validation rules (default: producers/validation/default.toml)")
    p.add_argument("--no-validate", action="store_true", help="skip validation")
    p.add_argument("--plain-clock", choices=("now", "index"), default="now",
                   help="ts_recv for plain JSON-lines files without receive times (default: now)")
    p.add_argument("--quality", action="store_true", help="also print per-symbol quality to stderr")
    p.set_defaults(func=cmd_normalize)


def cmd_normalize(args: argparse.Namespace) -> int:
    from producers.recordings.normalize import format_summary, run_normalize
    from producers.validation import RuleError

    out_fh = dlq_fh = None
    try:
        try:
            out_fh = open(args.output, "wb") if args.output else None
            dlq_fh = open(args.dlq, "wb") if args.dlq else None
        except OSError as exc:
            print(f"normalize: {exc}", file=sys.stderr)
            return 2
        sys.stdout.flush()
        out = out_fh if out_fh is not None else sys.stdout.buffer
        try:
            summary = run_normalize(
                args.file, args.venue, out, dlq=dlq_fh, rules=args.rules,
                validate=not args.no_validate, plain_clock=args.plain_clock,
            )
        except FileNotFoundError as exc:
            print(f"normalize: no such file: {exc.filename}", file=sys.stderr)
            return 2
        except (RuleError, ValueError) as exc:
            print(f"normalize: {exc}", file=sys.stderr)
            return 2
        out.flush()
        print(format_summary(summary, args.venue, args.file, args.dlq), file=sys.stderr)
        if args.quality and summary.quality:
            print("  quality:", file=sys.stderr)
            for q in summary.quality:
                print(f"    {q['symbol']}: ticks={q['total']} completeness={q['completeness']:.4f} "
                      f"validity={q['validity']:.4f} breaches={','.join(q['breaches']) or '-'}",
                      file=sys.stderr)
        return 0
    finally:
        for fh in (out_fh, dlq_fh):
            if fh is not None:
                fh.close()
