import pytest

from streaming.bus import bus_url, open_bus
from streaming.bus.kafka import KafkaSettings


def test_url_query_and_environment(monkeypatch):
    monkeypatch.setenv("TICKTIDE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("TICKTIDE_KAFKA_SASL_PASSWORD", "s3cret")
    s = KafkaSettings.from_url(
        "kafka://b1:9093,b2:9093?security_protocol=SASL_PLAINTEXT&sasl_mechanism=SCRAM-SHA-512"
        "&replication_factor=3&prefix=staging.")
    assert s.bootstrap == "b1:9093,b2:9093"
    assert s.security == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                          "sasl_plain_username": "svc", "sasl_plain_password": "s3cret"}
    assert s.replication_factor == 3
    assert s.physical("ticks.v1") == "staging.ticks.v1" and s.logical("staging.ticks.v1") == "ticks.v1"


def test_tls_builds_an_ssl_context(monkeypatch):
    monkeypatch.delenv("TICKTIDE_KAFKA_SSL_CAFILE", raising=False)
    s = KafkaSettings.from_url("kafka://b1:9093?security_protocol=SSL")
    assert s.security["ssl_context"] is not None


def test_bad_urls_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="kafka://host:port"):
        KafkaSettings.from_url("kafka:///nohost")
    with pytest.raises(ValueError, match="unknown bus URL"):
        open_bus("redis://x")
    monkeypatch.setenv("TICKTIDE_BUS", "kafka://h:1")
    assert bus_url(None) == "kafka://h:1" and bus_url("memory://") == "memory://"
