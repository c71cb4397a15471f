"""Quiet by default: no `_created` series, aiokafka at WARNING, no ERROR for a transient coordinator
lookup, the workflow's progress bar only on a terminal."""

from __future__ import annotations

import io
import logging

from prometheus_client import REGISTRY, generate_latest


def test_no_created_series():
    import streaming.metrics as m
    import ticktide.gateway.metrics  # noqa: F401

    m.EVENTS_IN.labels("quiet-test", "ticks.v1").inc()
    m.PROCESSING_SECONDS.labels("quiet-test").observe(0.01)
    text = generate_latest(REGISTRY).decode()
    assert "ticktide_events_in_total{" in text and "ticktide_processing_seconds_bucket{" in text
    assert "_created" not in text


def test_third_party_logs_are_quiet_unless_debugging():
    from ticktide.cli import quiet_third_party

    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    quiet_third_party(logging.INFO)
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.INFO)
    record = coordinator.makeRecord(coordinator.name, logging.ERROR, __file__, 1,
                                    "Group Coordinator Request failed: %s",
                                    ("[Error 15] CoordinatorNotAvailableError",), None)
    assert not coordinator.filter(record)  # the transient lookup error is dropped
    other = coordinator.makeRecord(coordinator.name, logging.ERROR, __file__, 1, "Heartbeat failed", (), None)
    assert coordinator.filter(other)  # anything else still shows


def test_progress_bar_only_on_a_terminal():
    from ticktide.workflow.pipeline import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    pipe, tty = io.StringIO(), Tty()
    for stream in (pipe, tty):
        bar = Progress(10, stream=stream)
        for i in range(1, 11):
            bar.update(i, "2020-01-01")
    assert pipe.getvalue() == ""
    assert "10/10" in tty.getvalue()
    off = Tty()
    bar = Progress(10, enabled=False, stream=off)
    bar.update(10)
    assert off.getvalue() == ""
