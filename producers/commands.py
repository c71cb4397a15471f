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
    from producers.live_commands import add_recording_options
    from streaming.commandline import add_venue_option

    add_recording_options(p, "recording to read")
    add_venue_option(p, available())
    p.add_argument("--dlq", metavar="FILE", help="write dead letters (DeadLetter JSON lines) here")
    p.add_argument("--output", "-o", metavar="FILE", help="write ticks here instead of stdout")
    p.add_argument("--rules", metavar="TOML", help="validation rules (default: producers/validation/default.toml)")
    p.add_argument("--no-validate", action="store_true", help="skip validation")
    p.add_argument("--plain-clock", choices=("now", "index"), default="now",
                   help="ts_recv for plain JSON-lines files without receive times (default: now)")
    p.add_argument("--quality", action="store_true", help="also print per-symbol quality to stderr")
    p.set_defaults(func=cmd_normalize)


def guess_venue(path: str, exclude: str, sample: int = 200) -> str | None:
    """The venue whose adapter turns most of the first ``sample`` frames into ticks, if any does."""
    from itertools import islice

    from producers.recordings.readers import read_frames
    from producers.venues import available, get_adapter

    try:
        frames = [f for _, f in islice(read_frames(path, plain_clock="index"), sample)]
    except (OSError, ValueError):
        return None
    best, best_ticks = None, 0
    for venue in available():
        if venue == exclude:
            continue
        adapter = get_adapter(venue)
        ticks = 0
        for frame in frames:
            try:
                ticks += len(adapter.parse(frame, 0).ticks or ())
            except Exception:  # noqa: BLE001 - a guess; any failure is "not this venue"
                continue
        if ticks > best_ticks:
            best, best_ticks = venue, ticks
    return best


def cmd_normalize(args: argparse.Namespace) -> int:
    from producers.live_commands import recording_path
    from producers.recordings.normalize import format_summary, run_normalize
    from producers.validation import RuleError

    args.file = recording_path(args, "ticktide normalize")
    out_fh = dlq_fh = None
    try:
        try:
            out_fh = open(args.output, "wb") if args.output else None
            dlq_fh = open(args.dlq, "wb") if args.dlq else None
        except OSError as exc:
            print(f"ticktide normalize: {exc.strerror}: {exc.filename} (check the path)", file=sys.stderr)
            return 2
        sys.stdout.flush()
        out = out_fh if out_fh is not None else sys.stdout.buffer
        try:
            summary = run_normalize(
                args.file, args.venue, out, dlq=dlq_fh, rules=args.rules,
                validate=not args.no_validate, plain_clock=args.plain_clock,
            )
        except FileNotFoundError as exc:
            print(f"ticktide normalize: no such file: {exc.filename} (check the path)", file=sys.stderr)
            return 2
        except (RuleError, ValueError) as exc:
            print(f"ticktide normalize: {exc}", file=sys.stderr)
            return 2
        out.flush()
        if summary.frames and not summary.ticks and summary.dead_letters >= summary.frames - sum(
                summary.skipped.values()) and summary.dead_letters:
            guess = guess_venue(args.file, args.venue)
            hint = f"the frames look like --venue {guess}" if guess else "check --venue and the file"
            print(f"ticktide normalize: all {summary.frames} frames of {args.file} were dead letters with "
                  f"--venue {args.venue}, 0 ticks ({hint})", file=sys.stderr)
            return 1
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
