"""The contenders of bench_pipeline.py that are not ticktide: each runs as its own process.

    python bench/pipeline_contenders.py passthrough --bootstrap H:P --source T --sink T --group G
    python bench/pipeline_contenders.py quix        --bootstrap H:P --source T --sink T --group G

* ``passthrough``: a bare aiokafka consume -> produce copy with the batch API
  (``create_batch``/``append``/``send_batch`` per output partition), producer
  settings as ticktide's (acks=all, idempotent, linger 5 ms), offsets committed
  after every output of a poll is acknowledged: the ceiling a Python consumer
  built on aiokafka can reach.
* ``bare-features``: the passthrough's loop around ticktide's own features
  computation (one-pass decode, ``FeaturesProcessor.process_columns``: the
  kernel and the bulk encoder), without the runtime (no state changelog,
  metrics, dead letters, rebalance hooks): the gap between it and
  ``ticktide consume features`` is what the runtime costs; the gap between it
  and ``passthrough`` is the computation and its 1 KB JSON output.
* ``quix``: a Quix Streams app computing 9 of ticktide's features per tick in
  plain Python with its keyed state (``stateful=True``), one output per tick.

Both run until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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


def _features_step():
    """For ``bare-features``: records of one poll -> {partition: encoded FeatureVectors} (keys kept)."""
    from consumers.features.processor import FeaturesProcessor
    from streaming.batch import Columns, decode_columns

    proc = FeaturesProcessor()
    proc.warm_up()
    gc.collect()
    gc.freeze()  # as `ticktide consume` does after its warm-up: fewer full-heap collections

    def step(got) -> dict[int, tuple[list, list]]:
        cols = Columns()
        for tp in sorted(got, key=lambda t: t.partition):
            recs = got[tp]
            cols.add_partition("ticks.v1", tp.partition, [r.offset for r in recs], [r.key for r in recs],
                               [r.value for r in recs], [r.timestamp for r in recs])
        if decode_columns(cols):
            raise RuntimeError("bare-features: undecodable tick")
        outputs = proc.process_columns(cols).outputs
        # keyed by symbol like the input, so the output partition is the input's
        part_of = {k: s.partition for s in cols.segments for k in cols.keys[s.start:s.stop]}
        by_part: dict[int, tuple[list, list]] = {}
        for out in outputs:
            for key, value in zip(out.keys, out.values):
                keys, values = by_part.setdefault(part_of[key], ([], []))
                keys.append(key)
                values.append(value)
        return by_part

    return step


async def _passthrough(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(args.source, bootstrap_servers=args.bootstrap, group_id=args.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed", fetch_max_wait_ms=args.fetch_max_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=args.linger_ms, max_batch_size=256 * 1024)
    step = _features_step() if args.contender == "bare-features" else None
    await consumer.start()
    await producer.start()
    await producer.client._wait_on_metadata(args.sink)  # send_batch does not wait for it
    sink_partitions = len(producer.client.cluster.partitions_for_topic(args.sink))
    try:
        while not stop.is_set():
            got = await consumer.getmany(timeout_ms=100, max_records=args.max_records)
            if not got:
                continue
            futures = []
            offsets = {}
            if step is None:  # copy
                out = {}  # same partition when the sink has as many (the benchmark's), else folded
                for tp, recs in got.items():
                    keys, values = out.setdefault(tp.partition % sink_partitions, ([], []))
                    keys += [r.key for r in recs]
                    values += [r.value for r in recs]
            else:
                out = step(got)
            for partition, (keys, values) in out.items():
                batch = producer.create_batch()
                for key, value in zip(keys, values):
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, args.sink, partition=partition))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None)
                futures.append(await producer.send_batch(batch, args.sink, partition=partition))
            for tp, records in got.items():
                offsets[TopicPartition(tp.topic, tp.partition)] = records[-1].offset + 1
            await asyncio.gather(*futures)
            await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("contender", choices=("passthrough", "bare-features", "quix"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-records", type=int, default=5000)
    # defaults: ticktide's throughput profile; the latency run passes its latency profile's
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--fetch-max-wait-ms", type=int, default=100)
    ap.add_argument("--state-dir", default="/tmp/ticktide-bench-quix-state")
    args = ap.parse_args(argv)
    if args.contender == "quix":
        return run_quix(args)
    return asyncio.run(_passthrough(args))


if __name__ == "__main__":
    sys.exit(main())
