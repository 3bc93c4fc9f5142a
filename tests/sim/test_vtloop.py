"""The virtual-time loop (tests/sim/vtloop.py): waits cost simulated seconds, and a deadlock is reported."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.sim.vtloop import VirtualLoop


@pytest.fixture
def loop() -> Iterator[VirtualLoop]:
    vt = VirtualLoop()
    yield vt
    vt.close()


def test_a_wait_advances_the_simulated_clock(loop: VirtualLoop) -> None:
    loop.run_until_complete(asyncio.sleep(3600.0))
    assert loop.time() == pytest.approx(3600.0)  # a real loop's clock reads the machine's monotonic time


def test_a_wait_for_what_nothing_will_do_is_reported_not_spun_on(loop: VirtualLoop) -> None:
    """Nothing ready and no timer: a real loop would block for ever; the simulation must say so rather than spin
    (it once did: the selector's check for "no timeout" sat behind a test that excluded it)."""

    def hung(_sig: int, _frame: FrameType | None) -> None:
        raise TimeoutError("the loop spun instead of reporting the deadlock")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(RuntimeError, match="simulation deadlock"):
            loop.run_until_complete(loop.create_future())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
