"""Soft time limits, as Celery has them: `SoftTimeLimitExceeded` raised inside a job before its
hard limit, so that it can clean up.

- A sync job: a timer signal (SIGALRM) on the main thread, where Lambda runs the handler (the
  local stack's workers are processes of their own, for the same reason). A blocking call in C
  (a socket read without a timeout, a long computation in an extension) is not interrupted: the
  exception is raised when control returns to Python.
- An async job: at the limit, the await the job is suspended in is cancelled, and the job sees
  `SoftTimeLimitExceeded` there instead of `CancelledError`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine, Generator, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from jobpipe.errors import SoftTimeLimitExceeded
from jobpipe.observability import logger


def _soft_limit_error(seconds: float) -> SoftTimeLimitExceeded:
    return SoftTimeLimitExceeded(f"the job ran past its soft time limit of {seconds:g} s")


@contextmanager
def soft_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise SoftTimeLimitExceeded in this (main) thread `seconds` from now, unless the block
    has ended by then."""
    if seconds is None:
        yield
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        logger.warning("a soft time limit needs the main thread; this job runs without one")
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise _soft_limit_error(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _SoftLimited:
    """Awaits a coroutine, turning the cancellation that the soft limit causes into
    SoftTimeLimitExceeded inside it (any other cancellation passes through unchanged)."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], seconds: float) -> None:
        self._coroutine = coroutine
        self._seconds = seconds
        self.expired = False

    def __await__(self) -> Generator[Any, Any, Any]:
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is not None:
                    if self.expired and isinstance(thrown, asyncio.CancelledError):
                        self.expired = False
                        thrown = _soft_limit_error(self._seconds)
                    suspended = self._coroutine.throw(thrown)
                else:
                    suspended = self._coroutine.send(sent)
            except StopIteration as done:
                return done.value
            try:
                sent, thrown = (yield suspended), None
            except BaseException as error:  # noqa: BLE001  (handed on to the job's coroutine)
                sent, thrown = None, error


async def run_limited(
    coroutine: Coroutine[Any, Any, Any], soft_seconds: float | None, hard_seconds: float
) -> Any:
    """Await a job's coroutine under its soft limit (SoftTimeLimitExceeded inside it) and its
    hard limit (TimeoutError, after which it is no longer awaited)."""
    async with asyncio.timeout(hard_seconds):
        if soft_seconds is None:
            return await coroutine
        limited = _SoftLimited(coroutine, soft_seconds)
        task = asyncio.current_task()
        assert task is not None
        fired: list[bool] = []

        def expire() -> None:
            fired.append(True)
            limited.expired = True
            task.cancel()

        timer = asyncio.get_running_loop().call_later(soft_seconds, expire)
        try:
            return await limited
        finally:
            timer.cancel()
            if fired:
                # The soft limit's cancel reached the job as SoftTimeLimitExceeded (the task was
                # suspended in it when the timer fired): it is spent, not pending.
                task.uncancel()
