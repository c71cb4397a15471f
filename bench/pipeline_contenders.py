"""The contenders of bench_pipeline.py that are not ticktide: each runs as its own process.

    python bench/pipeline_contenders.py passthrough --bootstrap H:P --source T --sink T --group G
    python bench/pipeline_contenders.py quix        --bootstrap H:P --source T --sink T --group G

* ``passthrough``: a bare aiokafka consume -> produce copy with the batch API
  (``create_batch``/``append``/``send_batch`` per output partition), producer
  settings as ticktide's (acks=all, idempotent, linger 5 ms), offsets committed
  after every output of a poll is acknowledged: the ceiling a Python consumer
  built on aiokafka can reach.
* ``quix``: a Quix Streams app computing 9 of ticktide's features per tick in
  plain Python with its keyed state (``stateful=True``), one output per tick.

Both run until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys

# the 9 features the Quix app computes, named as in features.v1
QUIX_FEATURES = ("return_1", "return_5", "return_21", "return_63", "volatility_5",
                 "volume_ma_5", "volume_ma_21", "support_10", "resistance_10")
HISTORY = 64  # prices kept per symbol: enough for return_63


def quix_features(prices: list[float], sizes: list[float]) -> dict[str, float | None]:
    """The Quix app's per-tick computation over the symbol's recent history (newest last)."""
    n = len(prices)
    p = prices[-1]
    out: dict[str, float | None] = {}
    for r in (1, 5, 21, 63):
        out[f"return_{r}"] = p / prices[-1 - r] - 1.0 if n > r else None
    if n >= 6:  # sample std of the last 5 log returns
        lr = [math.log(prices[i] / prices[i - 1]) for i in range(n - 5, n)]
        m = sum(lr) / 5
        out["volatility_5"] = math.sqrt(sum((x - m) ** 2 for x in lr) / 4)
    else:
        out["volatility_5"] = None
    for v in (5, 21):
        out[f"volume_ma_{v}"] = sum(sizes[-v:]) / v if len(sizes) >= v else None
    out["support_10"] = min(prices[-10:]) if n >= 10 else None
    out["resistance_10"] = max(prices[-10:]) if n >= 10 else None
    return out


def run_quix(args: argparse.Namespace) -> int:
    from quixstreams import Application

    app = Application(broker_address=args.bootstrap, consumer_group=args.group,
                      auto_offset_reset="earliest", processing_guarantee="at-least-once",
                      state_dir=args.state_dir, producer_extra_config={"linger.ms": 5, "acks": "all"})
    source = app.topic(args.source, value_deserializer="json")
    sink = app.topic(args.sink, value_serializer="json")

    def update(tick: dict, state) -> dict:
        prices = state.get("p", [])
        sizes = state.get("q", [])
        prices.append(tick["price"])
        sizes.append(tick.get("size") or 0.0)
        if len(prices) > HISTORY:
            del prices[0]
            del sizes[0]
        state.set("p", prices)
        state.set("q", sizes)
        seq = state.get("n", 0) + 1
        state.set("n", seq)
        return {"symbol": tick["symbol"], "ts_event": tick["ts_event"], "ts_ingest": tick["ts_recv"],
                "seq": seq, "price": tick["price"], "values": quix_features(prices, sizes)}

    sdf = app.dataframe(source)
    sdf = sdf.apply(update, stateful=True)
    sdf.to_topic(sink)
    app.run()
    return 0


async def _passthrough(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(args.source, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            if not got:
                continue
            futures = []
            offsets = {}
            for tp, records in got.items():
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, args.sink, partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None)
                futures.append(await producer.send_batch(batch, args.sink, partition=tp.partition))
                offsets[TopicPartition(tp.topic, tp.partition)] = records[-1].offset + 1
            await asyncio.gather(*futures)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("contender", choices=("passthrough", "quix"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-records", type=int, default=5000)
    ap.add_argument("--state-dir", default="/tmp/ticktide-bench-quix-state")
    args = ap.parse_args(argv)
    if args.contender == "quix":
        return run_quix(args)
    return asyncio.run(_passthrough(args))


if __name__ == "__main__":
    sys.exit(main())
