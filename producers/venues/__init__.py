"""Venue adapter registry: ``get_adapter("binance")`` -> a fresh adapter.

``ADAPTERS`` maps a venue name to a zero-argument-or-keywords factory; add a
venue (e.g. the market simulator) with :func:`register_adapter` or by adding
an entry to the dict. Adapters are pure and cheap to build.
"""

from __future__ import annotations

from typing import Callable

from producers.venues.base import VenueAdapter


def _binance(**kw) -> VenueAdapter:
    from producers.venues.binance import BinanceAdapter
    return BinanceAdapter(**kw)


def _binance_usdm(**kw) -> VenueAdapter:
    from producers.venues.binance_usdm import BinanceUsdmAdapter
    return BinanceUsdmAdapter(**kw)


def _coinbase(**kw) -> VenueAdapter:
    from producers.venues.coinbase import CoinbaseAdapter
    return CoinbaseAdapter(**kw)


def _kraken(**kw) -> VenueAdapter:
    from producers.venues.kraken import KrakenAdapter
    return KrakenAdapter(**kw)


ADAPTERS: dict[str, Callable[..., VenueAdapter]] = {
    "binance": _binance,
    "binance-usdm": _binance_usdm,
    "coinbase": _coinbase,
    "kraken": _kraken,
}


class UnknownVenueError(ValueError):
    """Raised by :func:`get_adapter` for a name not in :data:`ADAPTERS`."""


def register_adapter(name: str, factory: Callable[..., VenueAdapter], *, replace: bool = False) -> None:
    if name in ADAPTERS and not replace:
        raise ValueError(f"venue {name!r} is already registered")
    ADAPTERS[name] = factory


def available() -> list[str]:
    return sorted(ADAPTERS)


def get_adapter(name: str, **options) -> VenueAdapter:
    """A new adapter for ``name``; keyword options go to the adapter's constructor."""
    try:
        factory = ADAPTERS[name]
    except KeyError:
        raise UnknownVenueError(
            f"unknown venue {name!r}; known venues: {', '.join(available())}"
        ) from None
    return factory(**options)
