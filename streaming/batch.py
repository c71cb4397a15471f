"""Columnar batches: one fetched batch as parallel lists, decoded in one pass.

A ``Columns`` holds what the bus fetched (topics, partitions, offsets, keys,
values, timestamps as lists, grouped by partition in ``segments``) and, once
``decode_columns`` ran, the decoded events. Processors that opt in
(``Processor.columnar``) consume it directly; no per-message Python object
is built beyond the decoded event itself.

``decode_columns`` decodes each topic's values with one msgspec call over a
JSON array (``[v1,v2,...]``); only when that fails (a bad message in the
batch) does it fall back to one decode per message, so a poison message costs
the batch a second pass, never a crash, and is reported with its index.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import msgspec

from schemas.topics import lookup
from streaming.bus.base import Record
from streaming.bus.columns import Columns, Segment  # noqa: F401 - re-exported: the batch type
from streaming.codec import decode


@lru_cache(maxsize=None)
def _array_decoder(topic: str) -> msgspec.json.Decoder | None:
    """A decoder of a JSON array of the topic's events; None for opaque or unknown topics."""
    info = lookup(topic)
    if info is None or info.value_type is None:
        return None
    return msgspec.json.Decoder(list[info.value_type])


DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError)


def decode_values(topic: str, values: list[bytes]) -> tuple[list[Any], dict[int, str]]:
    """Decode ``values`` of ``topic``: (events with None where one failed, {index: reason})."""
    if not values:
        return [], {}
    array = _array_decoder(topic)
    if array is not None:
        try:
            events = array.decode(b"[" + b",".join(values) + b"]")
            if len(events) == len(values):  # a value like `{..},{..}` would add an element
                return events, {}
        except DECODE_ERRORS:
            pass
    events, errors = [], {}
    for i, v in enumerate(values):  # one at a time, so only the bad ones fail
        try:
            events.append(decode(topic, v))
        except DECODE_ERRORS as exc:
            events.append(None)
            errors[i] = f"{type(exc).__name__}: {exc}"
    return events, errors


def decode_records(records: Sequence[Record]) -> tuple[list[Any], dict[int, str]]:
    """``decode_values`` over Records, one call per run of one topic."""
    events: list[Any] = []
    errors: dict[int, str] = {}
    i, n = 0, len(records)
    while i < n:
        j = i
        while j < n and records[j].topic == records[i].topic:
            j += 1
        got, bad = decode_values(records[i].topic, [r.value for r in records[i:j]])
        events += got
        errors.update({i + k: reason for k, reason in bad.items()})
        i = j
    return events, errors


def decode_columns(cols: Columns) -> dict[int, str]:
    """Fill ``cols.events``; returns the rows that failed, with the reason."""
    events: list[Any] = []
    errors: dict[int, str] = {}
    i = 0
    n = len(cols.segments)
    while i < n:  # consecutive segments of one topic decode together
        j = i
        while j + 1 < n and cols.segments[j + 1].topic == cols.segments[i].topic:
            j += 1
        start, stop = cols.segments[i].start, cols.segments[j].stop
        got, bad = decode_values(cols.segments[i].topic, cols.values[start:stop])
        events += got
        errors.update({start + k: reason for k, reason in bad.items()})
        i = j + 1
    cols.events = events
    return errors
