"""Where and how to reach Kafka: ``KafkaSettings.from_url(kafka://...)`` (brokers, security, topic prefix,
replication, producer and fetch tuning), and ``retrying`` for the admin client's calls."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

_SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")


@dataclass
class KafkaSettings:
    bootstrap: str
    client_id: str = "ticktide"
    security: dict[str, Any] = field(default_factory=dict)
    replication_factor: int | None = None  # None: the topic's, else from the cluster size
    min_insync_replicas: int | None = None
    linger_ms: int = 5
    fetch_max_wait_ms: int = 500  # aiokafka's default; the runtime profiles set it (streaming.profiles)
    max_batch_size: int = 1_000_000  # under the broker default message.max.bytes (1 MiB): fewer produce round trips
    # how long a queued message may wait for its partition's leader (a broker outage) before it fails
    request_timeout_ms: int = 40_000
    isolation_level: str = "read_committed"
    # exactly-once: how long the broker lets a transaction stay open before aborting it (a producer that
    # died with one open; the partition's next owner aborts it at once when its producer starts)
    transaction_timeout_ms: int = 60_000
    topic_prefix: str = ""  # namespaces every topic, e.g. "staging." or one per test
    # a message the broker never acknowledged: "log" counts it (ticktide_publish_failures_total), logs
    # it once a minute per topic and the next flush raises it; "fail" makes the next publish raise it
    on_delivery_failure: str = "log"

    def physical(self, topic: str) -> str:
        return self.topic_prefix + topic

    def logical(self, topic: str) -> str:
        return topic[len(self.topic_prefix):] if topic.startswith(self.topic_prefix) else topic

    @classmethod
    def from_url(cls, url: str) -> "KafkaSettings":
        """``kafka://h1:9092,h2:9092?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512``.

        Query keys: security_protocol, sasl_mechanism, ssl_cafile, client_id,
        replication_factor, min_insync_replicas (for ``topics create``; also
        TICKTIDE_KAFKA_REPLICATION, TICKTIDE_KAFKA_MIN_ISR; default from the catalogue, else 1/1 on
        one broker and 3/2 on three or more), prefix (a topic-name prefix; also TICKTIDE_TOPIC_PREFIX),
        on_delivery_failure (``log``, the default, or ``fail``: a publisher stops at the first message the
        broker did not acknowledge; also TICKTIDE_ON_DELIVERY_FAILURE).

        Secrets come from the environment, never the URL in logs:
        TICKTIDE_KAFKA_SASL_USERNAME, TICKTIDE_KAFKA_SASL_PASSWORD,
        TICKTIDE_KAFKA_SSL_CAFILE (plus _CERTFILE/_KEYFILE for mutual TLS).
        """
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ValueError(f"not a kafka URL: {url!r} (expected kafka://host:port)")
        query = dict(parse_qsl(parts.query))
        security: dict[str, Any] = {k: query[k] for k in _SECURITY_KEYS if k in query}
        env = os.environ
        if env.get("TICKTIDE_KAFKA_SECURITY_PROTOCOL"):
            security.setdefault("security_protocol", env["TICKTIDE_KAFKA_SECURITY_PROTOCOL"])
        if env.get("TICKTIDE_KAFKA_SASL_MECHANISM"):
            security.setdefault("sasl_mechanism", env["TICKTIDE_KAFKA_SASL_MECHANISM"])
        if env.get("TICKTIDE_KAFKA_SASL_USERNAME"):
            security["sasl_plain_username"] = env["TICKTIDE_KAFKA_SASL_USERNAME"]
            security["sasl_plain_password"] = env.get("TICKTIDE_KAFKA_SASL_PASSWORD", "")
        if security.get("security_protocol", "PLAINTEXT") in ("SSL", "SASL_SSL"):
            security["ssl_context"] = create_ssl_context(
                cafile=query.get("ssl_cafile") or env.get("TICKTIDE_KAFKA_SSL_CAFILE"),
                certfile=env.get("TICKTIDE_KAFKA_SSL_CERTFILE"),
                keyfile=env.get("TICKTIDE_KAFKA_SSL_KEYFILE"),
            )
        return cls(
            bootstrap=parts.netloc,
            client_id=query.get("client_id", "ticktide"),
            security=security,
            replication_factor=_int_or_none(query.get("replication_factor", env.get("TICKTIDE_KAFKA_REPLICATION"))),
            min_insync_replicas=_int_or_none(query.get("min_insync_replicas", env.get("TICKTIDE_KAFKA_MIN_ISR"))),
            topic_prefix=query.get("prefix", env.get("TICKTIDE_TOPIC_PREFIX", "")),
            on_delivery_failure=_choice("on_delivery_failure", query.get(
                "on_delivery_failure", env.get("TICKTIDE_ON_DELIVERY_FAILURE", "log")), ("log", "fail")),
        )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} in the bus URL: use one of {', '.join(allowed)}")
    return value


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


async def retrying(call, timeout_s: float = 30.0):
    """``await call()``, again after a pause while it fails with a retriable Kafka error (a node not
    ready yet, a coordinator moving): the admin client, unlike the consumer and producer, does not
    retry by itself."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            return await call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)
