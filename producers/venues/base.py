"""The venue adapter contract: a subscribe message and a pure parse function.

``parse`` never raises on bad input and never does I/O: every frame ends up
as ticks, a recognized skip (acks, heartbeats, book frames), or a dead
letter with a reason. The connection manager owns the socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import Tick


@dataclass(slots=True)
class ParseResult:
    ticks: list[Tick] = field(default_factory=list)
    skipped: str | None = None  # why a frame yielded no tick on purpose: "ack", "heartbeat", "book", ...
    error: str | None = None  # set when the frame must be dead-lettered


class VenueAdapter(Protocol):
    name: str  # "binance", "binance-usdm", "coinbase", "kraken"
    default_url: str

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        """Frames to send after connecting (may be empty if the URL subscribes)."""

    def url_for(self, symbols: list[str], base_url: str | None = None) -> str:
        """The websocket URL to connect to for these symbols."""

    def parse(self, frame: bytes | str, ts_recv: int) -> ParseResult:
        """Raw frame -> canonical ticks, a skip, or an error. Pure; never raises."""
