"""Bulk FeatureVector encoding: a batch of kernel output rows to JSON, byte for byte as
``msgspec.json.encode(FeatureVector(...))`` writes each one.

The per-message path builds a ``values`` dict and a FeatureVector Struct per
tick. Here two Struct types mirror FeatureVector's fields (the values as one
field per feature name, in the kernel's column order, which is the dict's
order), so msgspec writes the same keys in the same order, NaN as null, and
one ``encode_lines`` call encodes the whole batch.
"""

from __future__ import annotations

from typing import Sequence

import msgspec

from schemas.events import FeatureVector


class VectorEncoder:
    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._values = msgspec.defstruct("FeatureValuesRow", [(n, float | None) for n in self.names], gc=False)
        fields = []
        for f in msgspec.structs.fields(FeatureVector):  # FeatureVector's own order
            fields.append((f.encode_name, self._values if f.name == "values" else f.type))
        self._vector = msgspec.defstruct("FeatureVectorRow", fields, gc=False)
        self._encoder = msgspec.json.Encoder()

    def encode(self, symbols: Sequence[str], ts_event: Sequence[int], ts_ingest: Sequence[int], ts_proc: int,
               seqs: Sequence[int], source: str, prices: Sequence[float | None],
               rows: Sequence[Sequence[float]]) -> list[bytes]:
        """One JSON document per row; NaN features (window not full) are written as null."""
        vector, values = self._vector, self._values
        docs = [vector(sym, te, ti, ts_proc, seq, source, price, values(*row))
                for sym, te, ti, seq, price, row in zip(symbols, ts_event, ts_ingest, seqs, prices, rows)]
        if not docs:
            return []
        return self._encoder.encode_lines(docs).split(b"\n")[:-1]
