"""InFlight: a batch's offsets are committed only after its acks and every earlier batch's."""

from __future__ import annotations

import asyncio

import pytest

from streaming.bus.base import CommitFailed, TopicPartition
from streaming.inflight import InFlight

TP = TopicPartition("ticks.v1", 0)
TP1 = TopicPartition("ticks.v1", 1)


class Broker:
    """Records commits; ``refuse`` makes the next commit fail as after a rebalance."""

    def __init__(self) -> None:
        self.commits: list[dict] = []
        self.committed: dict = {}
        self.refuse = False

    async def commit(self, offsets) -> None:
        await asyncio.sleep(0)
        if self.refuse:
            self.refuse = False
            raise CommitFailed("rebalanced")
        self.commits.append(dict(offsets))

    def inflight(self, **kw) -> InFlight:
        return InFlight(self.commit, self.committed.update, "test", **kw)


def ack() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_offsets_wait_for_their_acks_and_for_every_earlier_batch():
    broker = Broker()
    inflight = broker.inflight(max_commit_delay_s=0)
    first, second = ack(), ack()
    await inflight.submit([first], {TP: 10})
    await inflight.submit([second], {TP: 20, TP1: 5})
    second.set_result(None)  # the later batch is acknowledged first
    await settle()
    assert broker.commits == []  # never past the unacknowledged first batch
    first.set_result(None)
    await inflight.drain()
    assert broker.commits and broker.commits[-1] == {TP: 20, TP1: 5}
    assert all(c.get(TP, 0) <= 20 for c in broker.commits)
    assert broker.committed == {TP: 20, TP1: 5}
    assert len(inflight) == 0


async def test_commits_queued_behind_each_other_are_merged():
    broker = Broker()
    inflight = broker.inflight(max_commit_delay_s=60)
    acks = [ack() for _ in range(3)]
    for i, a in enumerate(acks):
        await inflight.submit([a], {TP: 10 * (i + 1)})
    for a in acks:
        a.set_result(None)
    await inflight.drain()
    assert broker.commits == [{TP: 30}]


async def test_a_failed_ack_is_raised_and_nothing_after_it_is_committed():
    broker = Broker()
    inflight = broker.inflight(max_commit_delay_s=0)
    bad, later = ack(), ack()
    await inflight.submit([bad], {TP: 10})
    await inflight.submit([later], {TP: 20})
    bad.set_exception(RuntimeError("message too large"))
    later.set_result(None)
    with pytest.raises(RuntimeError, match="message too large"):
        await inflight.drain()
    assert broker.commits == []
    await inflight.drain()  # raised once; the runner stops on it


async def test_a_failed_ack_is_raised_by_the_next_submit():
    inflight = Broker().inflight()
    bad = ack()
    await inflight.submit([bad], {TP: 10})
    bad.set_exception(RuntimeError("broken"))
    await settle()
    with pytest.raises(RuntimeError, match="broken"):
        await inflight.submit([], {TP: 11})


async def test_a_commit_refused_after_a_rebalance_is_logged_not_raised(caplog):
    broker = Broker()
    broker.refuse = True
    inflight = broker.inflight()
    done = ack()
    done.set_result(None)
    await inflight.submit([done], {TP: 10})
    await inflight.drain()
    assert broker.commits == [] and broker.committed == {}
    assert "group rebalanced" in caplog.text
    await inflight.submit([], {TP: 12})
    await inflight.drain()
    assert broker.commits == [{TP: 12}]


async def test_submit_waits_when_the_limit_is_reached():
    inflight = Broker().inflight(limit=2)
    acks = [ack() for _ in range(3)]
    await inflight.submit([acks[0]], {TP: 1})
    await inflight.submit([acks[1]], {TP: 2})
    third = asyncio.create_task(inflight.submit([acks[2]], {TP: 3}))
    await settle()
    assert not third.done()  # the loop stops fetching while the broker holds two batches
    acks[0].set_result(None)
    await asyncio.wait_for(third, 1)
    for a in acks[1:]:
        a.set_result(None)
    await inflight.drain()


async def test_cancel_leaves_the_outstanding_offsets_uncommitted():
    broker = Broker()
    inflight = broker.inflight()
    await inflight.submit([ack()], {TP: 10})  # never acknowledged: the broker is gone
    inflight.cancel()
    await settle()
    assert broker.commits == [] and len(inflight) == 0
