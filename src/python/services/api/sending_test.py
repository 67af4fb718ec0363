"""The api's message sender against a real Redis, one that refuses and one that hangs."""

import asyncio
import logging
import time

import pytest
import redis
from celery import Celery

from modules.testing.isolation import execution_slot
from modules.testing.network import closed_port, silent_listener
from modules.workqueue import QUEUE, TokenQueue, make_celery
from services.api.sending import MessageSender

pytestmark = pytest.mark.anyio


def _app(broker_url: str) -> Celery:
    # As the api builds it: a Redis that does not answer costs a batch seconds, not forever.
    timeouts = {"socket_connect_timeout": 2, "socket_timeout": 2}
    return make_celery("test", broker_url, broker_transport_options=timeouts)


def _sender(broker_url: str) -> MessageSender:
    return MessageSender(TokenQueue(_app(broker_url)))


class _Recording(TokenQueue):
    """The real queue, recording each batch's size; its first send can fail with an error the
    sender does not expect."""

    def __init__(self, broker_url: str, *, fail_first: bool = False) -> None:
        super().__init__(_app(broker_url))
        self.batches: list[int] = []
        self._fail = fail_first

    def send(self, count: int = 1) -> None:
        self.batches.append(count)
        if self._fail:
            self._fail = False
            raise RuntimeError("an error no one expected")
        super().send(count)


@pytest.fixture()
def broker_url(redis_base_url: str) -> str:
    url = f"{redis_base_url}/{8 + execution_slot() % 8}"
    redis.Redis.from_url(url).flushdb()
    return url


async def test_every_request_gets_its_message_and_requests_during_a_batch_share_the_next(
    broker_url: str,
) -> None:
    queue = _Recording(broker_url)
    sender = MessageSender(queue)
    sender.start()
    sent = [sender.request() for _ in range(3)]
    await asyncio.gather(*sent)
    # 40 requests while nothing is out: one batch, every message sent.
    later = [sender.request() for _ in range(40)]
    await asyncio.gather(*later)
    await sender.close()
    assert redis.Redis.from_url(broker_url).llen(QUEUE) == 43
    assert queue.batches == [3, 40]


async def test_a_waiter_that_went_away_or_an_unexpected_error_does_not_stop_the_sender(
    broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue = _Recording(broker_url, fail_first=True)
    sender = MessageSender(queue)
    sender.start()
    gone = sender.request()
    gone.cancel()  # as a `Prefer: wait` request whose client disconnected
    with caplog.at_level(logging.ERROR, logger="services.api.sending"):
        while not queue.batches:  # the first batch, which fails unexpectedly
            await asyncio.sleep(0.01)
        await asyncio.wait_for(sender.request(), timeout=30)
    await sender.close()
    assert queue.batches == [1, 1]
    assert redis.Redis.from_url(broker_url).llen(QUEUE) == 1
    assert any("queued without a message" in r.getMessage() for r in caplog.records)


async def test_close_sends_what_was_asked_for(broker_url: str) -> None:
    sender = _sender(broker_url)
    sender.start()
    pending = [sender.request() for _ in range(5)]
    await sender.close()
    assert all(done.done() for done in pending)
    assert redis.Redis.from_url(broker_url).llen(QUEUE) == 5


async def test_a_refusing_redis_is_logged_and_no_request_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = _sender(f"redis://127.0.0.1:{closed_port()}/0")
    sender.start()
    with caplog.at_level(logging.WARNING, logger="services.api.sending"):
        await asyncio.gather(*(sender.request() for _ in range(4)))
        await sender.close()
    warned = [r.getMessage() for r in caplog.records if r.name == "services.api.sending"]
    assert warned, caplog.records
    assert all("queued without a message (the reconciler sends them)" in m for m in warned)
    assert sum(int(m.split()[0]) for m in warned) == 4


async def test_a_hanging_redis_holds_no_request_and_its_batch_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with silent_listener() as port:
        sender = _sender(f"redis://127.0.0.1:{port}/0")
        sender.start()
        started = time.monotonic()
        first = sender.request()
        # Asking does not wait: the event loop goes on while the batch hangs.
        await asyncio.sleep(0.1)
        assert not first.done()
        second = sender.request()
        with caplog.at_level(logging.WARNING, logger="services.api.sending"):
            await asyncio.gather(first, second)
            await sender.close()
        assert time.monotonic() - started < 30  # ended by the socket timeouts, not hung
    assert any("queued without a message" in r.getMessage() for r in caplog.records)
