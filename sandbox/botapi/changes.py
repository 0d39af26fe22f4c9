"""A version counter whose waiters may sit on any event loop or thread.

The server runs on one event loop (perhaps in a background thread); the tests
and the web chat wait on another loop, or block a plain thread. Every change
to the world bumps the version, and each waiter is woken in its own way:
`call_soon_threadsafe` for a loop, a `threading.Event` for a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class _LoopWaiter:
    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future

    def wake(self) -> None:
        # The loop may already be closed when a test's loop ended first.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class _ThreadWaiter:
    def __init__(self) -> None:
        self.event = threading.Event()

    def wake(self) -> None:
        self.event.set()


class Changes:
    """A monotonically increasing version; `wait` returns when it moves on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: set[_LoopWaiter | _ThreadWaiter] = set()

    @property
    def version(self) -> int:
        """The current version."""
        return self._version

    def bump(self) -> None:
        """Record a change and wake every waiter."""
        with self._lock:
            self._version += 1
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.wake()

    async def wait(self, version: int, timeout: float | None) -> bool:
        """Wait until the version differs from `version`, at most `timeout` seconds.

        Returns:
            True if it changed, False on time-out.
        """
        loop = asyncio.get_running_loop()
        waiter = _LoopWaiter(loop, loop.create_future())
        with self._lock:
            if self._version != version:
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait([waiter.future], timeout=timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
            waiter.future.cancel()
        return self._version != version

    def wait_blocking(self, version: int, timeout: float | None) -> bool:
        """Like `wait`, for a plain thread."""
        waiter = _ThreadWaiter()
        with self._lock:
            if self._version != version:
                return True
            self._waiters.add(waiter)
        try:
            waiter.event.wait(timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self._version != version
