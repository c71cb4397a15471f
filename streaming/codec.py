"""Encode and decode events with msgspec, one typed decoder per topic."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from schemas.topics import topic as topic_info

_encoder = msgspec.json.Encoder()


def encode(event: msgspec.Struct) -> bytes:
    return _encoder.encode(event)


@lru_cache(maxsize=None)
def decoder_for(topic: str) -> msgspec.json.Decoder:
    value_type = topic_info(topic).value_type
    if value_type is None:
        raise ValueError(f"topic {topic!r} carries opaque bytes, not events")
    return msgspec.json.Decoder(value_type)


def decode(topic: str, value: bytes) -> Any:
    """Decode one message of ``topic``; raises msgspec.DecodeError/ValidationError on bad input."""
    return decoder_for(topic).decode(value)


def key_for(topic: str, event: msgspec.Struct) -> bytes | None:
    """The record key from the catalogue's key field (symbol, portfolio_id, ...)."""
    field = topic_info(topic).key
    if field is None:
        return None
    value = getattr(event, field, None)
    return None if value is None else str(value).encode()
