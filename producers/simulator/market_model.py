"""The simulated market behind ``producers.simulator.server``: pure, seeded, no I/O.

``MarketModel`` yields an endless, reproducible sequence of events (trades
and top-of-book quotes for several symbols, as Binance spot payloads) with
simulated times; prices follow a geometric Brownian motion with occasional
jumps, and arrival rates have occasional volume bursts. ``frames`` gives the
first ``n`` of them as websocket frames. ``SimulatorServer`` (in
``producers.simulator.server``) paces the sequence in real time and serves it.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from dataclasses import dataclass, field
from typing import Iterator

DEFAULT_PRICES = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "SOLUSDT": 150.0, "BNBUSDT": 550.0}
SECONDS_PER_YEAR = 365.0 * 86400.0
STREAM_KINDS = ("trade", "bookTicker")


@dataclass
class SimConfig:
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    rate: float = 50.0  # messages per second per symbol (trades + quotes), outside bursts
    seed: int = 0
    trade_ratio: float = 0.4  # share of events that are trades
    volatility: float = 0.8  # annualized GBM volatility
    drift: float = 0.0  # annualized GBM drift
    jump_prob: float = 0.001  # per event
    jump_scale: float = 0.002  # log-return std of a jump
    burst_prob: float = 0.02  # per simulated second, per symbol
    burst_factor: float = 5.0  # rate multiplier during a burst
    burst_seconds: float = 2.0
    prices: dict[str, float] = field(default_factory=dict)
    # None: fixed (1_000_000 / 50_000_000) with the simulated clock; with the wall
    # clock, derived from the start time (microseconds since the epoch) so that a
    # restarted simulator keeps ids increasing, as a real venue does, and a
    # producer that stayed up does not drop the new ids as duplicates
    first_trade_id: int | None = None
    first_update_id: int | None = None
    start_ms: int = 1_700_000_000_000  # simulated epoch for the deterministic clock


@dataclass(slots=True)
class SimEvent:
    offset: float  # simulated seconds since the start
    symbol: str
    stream: str  # "btcusdt@trade"
    data: dict

    def combined(self) -> str:
        return json.dumps({"stream": self.stream, "data": self.data}, separators=(",", ":"))

    def raw(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


def _tick_size(price: float) -> float:
    if price <= 0:
        return 1e-8
    return 10.0 ** (math.floor(math.log10(price)) - 6)


def _fmt(x: float) -> str:
    return f"{x:.8f}"


class _SymbolState:
    __slots__ = ("symbol", "lower", "price", "tick", "rng", "trade_id", "update_id",
                 "burst_until", "next_t", "skip", "last_burst_check")

    def __init__(self, symbol: str, price: float, seed: int, cfg: SimConfig) -> None:
        self.symbol = symbol
        self.lower = symbol.lower()
        self.price = price
        self.tick = _tick_size(price)
        # an independent stream per symbol: adding a symbol does not change the others
        self.rng = random.Random(f"{seed}:{symbol}")
        self.trade_id = 1_000_000 if cfg.first_trade_id is None else cfg.first_trade_id
        self.update_id = 50_000_000 if cfg.first_update_id is None else cfg.first_update_id
        self.burst_until = -1.0
        self.last_burst_check = 0.0
        self.next_t = 0.0
        self.skip = 0


class MarketModel:
    """The reproducible event sequence; ``clock_ms`` stamps E/T (None = simulated time)."""

    def __init__(self, cfg: SimConfig) -> None:
        if cfg.rate <= 0:
            raise ValueError("rate must be > 0")
        self.cfg = cfg
        self._states: dict[str, _SymbolState] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._prev_time: dict[str, float] = {}
        for i, sym in enumerate(s.upper() for s in cfg.symbols):
            price = cfg.prices.get(sym, DEFAULT_PRICES.get(sym, 100.0))
            st = _SymbolState(sym, price, cfg.seed, cfg)
            st.next_t = self._interarrival(st, 0.0)
            self._states[sym] = st
            heapq.heappush(self._heap, (st.next_t, i, sym))
        self.events = 0

    @property
    def symbols(self) -> list[str]:
        return list(self._states)

    def skip_trade_ids(self, symbol: str, n: int = 1) -> None:
        """The next trade of ``symbol`` jumps its id by ``n`` (a gap of n missing trades)."""
        self._states[symbol.upper()].skip += n

    def _interarrival(self, st: _SymbolState, now: float) -> float:
        cfg = self.cfg
        # burst switching is decided once per simulated second
        while st.last_burst_check + 1.0 <= now:
            st.last_burst_check += 1.0
            if st.burst_until < st.last_burst_check and st.rng.random() < cfg.burst_prob:
                st.burst_until = st.last_burst_check + cfg.burst_seconds
        rate = cfg.rate * (cfg.burst_factor if now < st.burst_until else 1.0)
        return now + st.rng.expovariate(rate)

    def next_event(self, clock_ms: int | None = None) -> SimEvent:
        t, i, sym = heapq.heappop(self._heap)
        st = self._states[sym]
        cfg = self.cfg
        rng = st.rng
        # GBM step over the time since this symbol's previous event
        prev = self._prev_time.get(sym, 0.0)
        dt_years = max(t - prev, 1e-9) / SECONDS_PER_YEAR
        self._prev_time[sym] = t
        z = rng.gauss(0.0, 1.0)
        log_ret = (cfg.drift - 0.5 * cfg.volatility ** 2) * dt_years + cfg.volatility * math.sqrt(dt_years) * z
        if rng.random() < cfg.jump_prob:
            log_ret += rng.gauss(0.0, cfg.jump_scale)
        st.price *= math.exp(log_ret)
        ms = clock_ms if clock_ms is not None else cfg.start_ms + int(t * 1000)
        burst = t < st.burst_until
        if rng.random() < cfg.trade_ratio:
            st.trade_id += 1 + st.skip
            st.skip = 0
            price = max(st.tick, round(st.price / st.tick) * st.tick)
            qty = round(rng.lognormvariate(-3.0, 1.2) * (3.0 if burst else 1.0), 5) or 0.00001
            data = {"e": "trade", "E": ms, "s": sym, "t": st.trade_id, "p": _fmt(price),
                    "q": _fmt(qty), "T": ms, "m": rng.random() < 0.5, "M": True}
            stream = f"{st.lower}@trade"
        else:
            st.update_id += rng.randint(1, 5)  # non-contiguous, as on Binance
            mid = st.price
            half = st.tick * rng.randint(1, 3)
            bid = max(st.tick, math.floor((mid - half) / st.tick) * st.tick)
            ask = max(bid + st.tick, math.ceil((mid + half) / st.tick) * st.tick)
            data = {"u": st.update_id, "s": sym, "b": _fmt(bid),
                    "B": _fmt(round(rng.lognormvariate(0.0, 1.0), 5)),
                    "a": _fmt(ask), "A": _fmt(round(rng.lognormvariate(0.0, 1.0), 5))}
            stream = f"{st.lower}@bookTicker"
        st.next_t = self._interarrival(st, t)
        heapq.heappush(self._heap, (st.next_t, i, sym))
        self.events += 1
        return SimEvent(t, sym, stream, data)

    def __iter__(self) -> Iterator[SimEvent]:
        while True:
            yield self.next_event()


def frames(cfg: SimConfig, n: int, combined: bool = True) -> list[str]:
    """The first ``n`` frames of a simulated market (deterministic clock)."""
    model = MarketModel(cfg)
    out = []
    for _ in range(n):
        ev = model.next_event()
        out.append(ev.combined() if combined else ev.raw())
    return out
