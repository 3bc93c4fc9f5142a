"""Fixtures for the X10 tests: CM11A emulators on ptys, bare ptys, the line-monitor shim built with gcc."""

from __future__ import annotations

import os
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cm11a_emulator import CM11AEmulator
from omha_testing.linemon import build_shim


@pytest.fixture
def cm11a() -> Iterator[Callable[..., CM11AEmulator]]:
    """A factory of started CM11A emulators (keyword arguments as :class:`CM11AEmulator`); all are stopped
    at the end of the test, and none may have seen a protocol error."""
    started: list[CM11AEmulator] = []

    def make(**kwargs: Any) -> CM11AEmulator:
        emu = CM11AEmulator(**kwargs)
        emu.start()
        started.append(emu)
        return emu

    try:
        yield make
    finally:
        for emu in started:
            emu.stop()
    for emu in started:
        assert emu.errors == [], f"the emulated CM11A saw protocol errors: {emu.errors}"


@pytest.fixture
def pty_port() -> Iterator[str]:
    """A raw pseudo-terminal's slave path, with no modem lines and nobody answering (closed afterwards)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@pytest.fixture(scope="session")
def linemon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LD_PRELOAD line-monitor library, compiled once per session into a temp dir."""
    require_commands("gcc")
    return build_shim(tmp_path_factory.mktemp("linemon"))
