"""A virtual-time asyncio event loop: waiting costs no wall-clock time.

The loop's clock is a number that only moves when every task is waiting: the selector, asked to wait for
``timeout`` seconds, adds ``timeout`` to the clock and returns at once. Timers, ``asyncio.sleep`` and
``wait_for`` all read :meth:`VirtualLoop.time`, so the real daemon code runs unchanged on simulated seconds.
Nothing here may block on real I/O: the simulation replaces :func:`asyncio.to_thread` by an inline call.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _Selector(selectors.SelectSelector):
    """Never waits: a wait of ``timeout`` seconds advances the owning loop's clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        if self.loop is not None:
            if timeout is None:  # nothing ready and no timer: a real loop would block for ever
                raise RuntimeError("simulation deadlock: nothing scheduled")
            self.loop.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on simulated time (seconds from 0)."""

    def __init__(self) -> None:
        selector = _Selector()
        super().__init__(selector)
        self.now = 0.0
        selector.loop = self
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self.now
