"""The api's run-job messages, sent in batches by one task per process.

A submission asks for a message once its transaction committed, and does not wait for it: a
Redis outage must not hold or fail a response (the reconciler sends what the api could not).
Requests that arrive while a batch is out go in the next one, so under load one thread hop and
one producer serve many jobs instead of one each (ADR 015).
"""

import asyncio
import logging

from celery.exceptions import OperationalError
from starlette.concurrency import run_in_threadpool

from modules.workqueue import TokenQueue

logger = logging.getLogger(__name__)


class MessageSender:
    def __init__(self, queue: TokenQueue) -> None:
        self._queue = queue
        self._waiting: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-sender")

    async def close(self) -> None:
        """Send what was asked for, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    def request(self) -> asyncio.Future[None]:
        """One message, in the next batch; the future is done once that batch was sent (or
        failed, which is logged)."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        self._wake.set()
        return done

    async def _run(self) -> None:
        while not (self._closing and not self._waiting):
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            if not batch:
                continue
            try:
                await run_in_threadpool(self._queue.send, len(batch))
            except (OperationalError, OSError) as error:
                logger.warning(
                    "%d jobs queued without a message (the reconciler sends them): %s",
                    len(batch),
                    error,
                )
            except Exception:
                # Whatever else a send raises must not end the sender: later batches still go.
                logger.exception(
                    "%d jobs queued without a message (the reconciler sends them)", len(batch)
                )
            for done in batch:
                if not done.done():  # a request that waited for it may have gone away
                    done.set_result(None)
