"""End-to-end benchmark of the features consumer on a real broker (not a test).

    scripts/kafka-local start
    .venv/bin/python bench/bench_pipeline.py [--bus kafka://127.0.0.1:9092] [--ticks 500000] [--repeat 3]
    .venv/bin/python bench/bench_pipeline.py --latency [--rate 10000] [--seconds 60]

Starts from a running broker (``--bus``, else ``$TICKTIDE_BENCH_BUS``, else
``$TICKTIDE_BUS``). For every run it creates fresh topics under a prefix of its
own, preloads ``--ticks`` trade ticks for 10 symbols (the BTCUSDT trades of
tests/data continued by their own log returns, one scaled copy per symbol,
interleaved) and lets one contender drain them in a fresh consumer group:

* ``passthrough``: bare aiokafka, batch API (bench/pipeline_contenders.py);
* ``bare-features``: the same loop around ticktide's features computation
  (decode, kernel, bulk encoder) without the runtime: what the runtime costs
  is the gap between it and ``ticktide``;
* ``ticktide``: ``ticktide consume features`` (31 features, one FeatureVector per tick);
* ``ticktide-eos``: the same with ``--exactly-once``;
* ``quix``: a Quix Streams app computing 9 of the features in Python (``pip install -e '.[bench]'``).

Order rotated per repetition. Throughput and CPU are measured between the
first and the last output (process start-up excluded): msgs/s from the
output topic's end offsets, CPU µs/msg from the process's user+system time
(/proc/<pid>/stat); the broker's too when it runs on this machine (the
process listening on the bootstrap port, found with ``ss``). Every contender's output is read back (read_committed):
the count must equal the ticks, and sampled values must equal the offline
kernels' (FeatureEngine over the same series), else the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_features import load_trades, tiled  # noqa: E402
from pipeline_verify import offline_features, verify  # noqa: E402

from schemas.events import Tick  # noqa: E402

SYMBOLS = tuple(f"SYM{i:02d}USDT" for i in range(10))
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONTENDERS = ("passthrough", "bare-features", "ticktide", "ticktide-eos", "quix")
# ticktide-2: two instances in one group; baseline: `consume features` of another checkout
# (--baseline-root, e.g. `git archive <commit>` unpacked), for a same-run before/after
EXTRA = ("ticktide-2", "baseline", "baseline-eos")
BASELINE_ROOT: list[str] = []


# -- inputs ------------------------------------------------------------------------
def make_series(n_ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol (rows) the price and size series, ``n_ticks / 10`` each."""
    p0, q0 = load_trades()
    per = -(-n_ticks // len(SYMBOLS))
    prices, sizes = tiled(p0, q0, per + 997 * len(SYMBOLS))
    ps = np.stack([prices[997 * i: 997 * i + per] * (1.0 + 0.01 * i) for i in range(len(SYMBOLS))])
    qs = np.stack([sizes[997 * i: 997 * i + per] for i in range(len(SYMBOLS))])
    return ps, qs


def encode_ticks(ps: np.ndarray, qs: np.ndarray, n_ticks: int, t0_ns: int) -> list[tuple[bytes, bytes]]:
    enc = msgspec.json.Encoder()
    out = []
    pl, ql = ps.tolist(), qs.tolist()
    for j in range(n_ticks):
        s, k = j % len(SYMBOLS), j // len(SYMBOLS)
        ts = t0_ns + j * 1_000_000
        tick = Tick(symbol=SYMBOLS[s], venue="BINANCE", kind="trade", ts_event=ts, ts_recv=ts + 500_000,
                    price=pl[s][k], size=ql[s][k], side="buy", trade_id=str(j))
        out.append((SYMBOLS[s].encode(), enc.encode(tick)))
    return out


async def preload(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.partitioner import murmur2

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 6, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        by_part: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in messages:
            by_part.setdefault((murmur2(key) & 0x7FFFFFFF) % 6, []).append((key, value))
        futures = []
        for part, items in by_part.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=part))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=part))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- one run -------------------------------------------------------------------------
def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to all, then wait for each (30 s; SIGKILL after that)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the local process listening on the bootstrap port (``ss``), to count the broker's
    CPU too: on a shared machine the broker is often the other half of the bill."""
    port = bootstrap.rsplit(":", 1)[-1]
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    pids = {int(p) for p in re.findall(r"pid=(\d+)", out)}
    return pids.pop() if len(pids) == 1 else None


def command(contender: str, bootstrap: str, prefix: str, group: str, state_dir: str) -> list[str]:
    py = sys.executable
    if contender.startswith("baseline"):
        eos = ["--exactly-once", "--instance-id", f"{group}-{uuid.uuid4().hex[:4]}"] if contender == "baseline-eos" \
            else []
        return [py, "-m", "ticktide.cli", "consume", "features", "--bus", f"kafka://{bootstrap}?prefix={prefix}",
                "--group", group, "--max-records", "5000", *eos]
    if contender.startswith("ticktide"):
        eos = ["--exactly-once"] if contender == "ticktide-eos" else []
        return [py, "-m", "ticktide.cli", "consume", "features", "--bus", f"kafka://{bootstrap}?prefix={prefix}",
                "--group", group, "--instance-id", f"{group}-{uuid.uuid4().hex[:4]}", *eos]
    return [py, str(ROOT / "bench" / "pipeline_contenders.py"), contender, "--bootstrap", bootstrap,
            "--source", f"{prefix}ticks.v1", "--sink", f"{prefix}{sink_name(contender)}", "--group", group,
            "--state-dir", state_dir]


def sink_name(contender: str) -> str:
    return "features.v1" if contender != "passthrough" else "copy.v1"


async def committed_total(admin, group: str) -> int:
    from aiokafka.errors import KafkaError

    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # the group's coordinator is not there yet
        return 0
    return sum(o.offset for tp, o in offsets.items() if tp.topic.endswith("ticks.v1") and o.offset >= 0)


async def run_one(contender: str, bootstrap: str, messages, timeout_s: float, log_dir: Path) -> dict:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    run_id = uuid.uuid4().hex[:8]
    prefix, group = f"bench{run_id}.", f"bench-{contender}-{run_id}"
    await preload(bootstrap, f"{prefix}ticks.v1", messages)
    n = len(messages)
    if True:  # the sink with the catalogue's 6 partitions (never broker-default auto-creation)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        from aiokafka.admin import NewTopic
        await admin.create_topics([NewTopic(f"{prefix}{sink_name(contender)}", 6, 1)])
        await admin.close()
    log_path = log_dir / f"{contender}-{run_id}.log"
    root = Path(BASELINE_ROOT[0]) if contender.startswith("baseline") else ROOT
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as state_dir, open(log_path, "wb") as log:
        procs = [subprocess.Popen(command(contender, bootstrap, prefix, group, state_dir), cwd=root, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
                 for _ in range(2 if contender == "ticktide-2" else 1)]
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await watcher.start()
        sink = [TopicPartition(f"{prefix}{sink_name(contender)}", p) for p in range(6)]
        samples: list[tuple[float, int, float, float]] = []  # time, outputs written, cpu, broker cpu
        broker = broker_pid(bootstrap)
        deadline = time.monotonic() + timeout_s
        ticktide = contender.startswith(("ticktide", "baseline"))
        group_id = prefix + group if ticktide else group  # ticktide prefixes its group ids
        try:
            while True:
                for proc in procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{contender} exited {proc.returncode}: {log_path.read_text()[-2000:]}")
                written = sum((await watcher.end_offsets(sink)).values())
                samples.append((time.monotonic(), written, sum(cpu_seconds(p.pid) for p in procs),
                                cpu_seconds(broker) if broker else float("nan")))
                # done when the group committed every input (its outputs are all out by then)
                if written >= n and await committed_total(admin, group_id) >= n:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{contender}: {written}/{n} after {timeout_s}s ({log_path})")
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
            await watcher.stop()
            stop_processes(procs)
    # timed from the first output to the n-th (transaction markers make exactly-once's count
    # run slightly ahead; < 0.2 % here): start-up and the final commit wait are excluded.
    started = next(s for s in samples if s[1] > 0)
    end = next(s for s in samples if s[1] >= n)
    drained = end[1] - started[1]
    seconds = end[0] - started[0]
    result = {"contender": contender, "msgs_per_s": drained / seconds if seconds > 0 else float("nan"),
              "cpu_us_per_msg": (end[2] - started[2]) / max(drained, 1) * 1e6,
              "broker_us_per_msg": (end[3] - started[3]) / max(drained, 1) * 1e6,
              "prefix": prefix, "drained": drained}
    result["outputs"] = await verify(contender, bootstrap, f"{prefix}{sink_name(contender)}", n)
    await delete_topics(bootstrap, prefix)
    return result


async def delete_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


# -- report ------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(results: list[dict], n: int) -> None:
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["contender"], []).append(r)
    med = {c: statistics.median(r["msgs_per_s"] for r in rs) for c, rs in by.items()}
    print(f"\n{n} ticks, 10 symbols; {len(next(iter(by.values())))} repetitions; CPU {cpu_model()}, "
          f"{os.cpu_count()} cores")
    print("| contender | msgs/s (each run) | median msgs/s | CPU µs/msg (median) | broker CPU µs/msg | "
          "vs passthrough | vs quix |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for c in CONTENDERS + EXTRA:
        if c not in by:
            continue
        runs = ", ".join(f"{r['msgs_per_s']:,.0f}" for r in by[c])
        cpu = statistics.median(r["cpu_us_per_msg"] for r in by[c])
        broker = statistics.median(r["broker_us_per_msg"] for r in by[c])
        vs_pt = f"{med[c] / med['passthrough']:.2f}x" if "passthrough" in med else "-"
        vs_q = f"{med[c] / med['quix']:.2f}x" if "quix" in med else "-"
        print(f"| {c} | {runs} | {med[c]:,.0f} | {cpu:.1f} | {broker:.1f} | {vs_pt} | {vs_q} |")
    for ours, theirs in (("ticktide", "baseline"), ("ticktide-eos", "baseline-eos")):
        if theirs in med and ours in med:
            print(f"{ours} / {theirs} ({BASELINE_ROOT[0]}): {med[ours] / med[theirs]:.2f}x msgs/s")
    if "ticktide-2" in med and "ticktide" in med:
        print(f"two instances in one group / one instance: {med['ticktide-2'] / med['ticktide']:.2f}x "
              f"(ticktide-2's CPU µs/msg is both processes together)")


async def throughput(args: argparse.Namespace) -> int:
    bootstrap = args.bus.split("://", 1)[1].split("?", 1)[0]
    contenders = [c for c in args.contenders.split(",") if c]
    ps, qs = make_series(args.ticks)
    messages = encode_ticks(ps, qs, args.ticks, 1_700_000_000_000_000_000)
    per_symbol = [len(range(i, args.ticks, len(SYMBOLS))) for i in range(len(SYMBOLS))]
    offline_features(SYMBOLS, ps, qs, per_symbol)
    log_dir = Path(tempfile.mkdtemp(prefix="ticktide-bench-pipeline-"))
    results = []
    for rep in range(args.repeat):
        order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
        for c in order:
            r = await run_one(c, bootstrap, messages, args.timeout, log_dir)
            print(f"rep {rep + 1} {c}: {r['msgs_per_s']:,.0f} msgs/s, {r['cpu_us_per_msg']:.1f} CPU µs/msg "
                  f"(broker {r['broker_us_per_msg']:.1f}), "
                  f"{r['outputs']} outputs verified", flush=True)
            results.append(r)
    report(results, args.ticks)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", default=os.environ.get("TICKTIDE_BENCH_BUS") or os.environ.get("TICKTIDE_BUS")
                    or "kafka://127.0.0.1:9092", help="a running broker: kafka://host:port")
    ap.add_argument("--ticks", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--contenders", default=",".join(CONTENDERS),
                    help=f"comma-separated subset of {','.join(CONTENDERS + EXTRA)}")
    ap.add_argument("--baseline-root", help="another checkout whose `consume features` runs as 'baseline'")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one contender may take")
    ap.add_argument("--latency", action="store_true", help="tick->signal latency at a fixed rate instead")
    ap.add_argument("--rate", type=float, default=10_000, help="--latency: ticks per second")
    ap.add_argument("--seconds", type=float, default=60, help="--latency: how long to send")
    ap.add_argument("--profile", default="latency", help="--latency: the consumers' --profile")
    ap.add_argument("--warmup", type=float, default=5, help="--latency: seconds sent first, reported apart")
    args = ap.parse_args(argv)
    if args.baseline_root:
        BASELINE_ROOT.append(args.baseline_root)
    if args.latency:
        from pipeline_latency import latency

        return asyncio.run(latency(args))
    return asyncio.run(throughput(args))


if __name__ == "__main__":
    sys.exit(main())
