"""tests/ops reuse the Kafka fixtures of the integration tests (real broker, per-test topic prefix,
``ticktide`` subcommands as OS processes)."""

from tests.integration.conftest import kafka_broker, kafka_url, processes  # noqa: F401
