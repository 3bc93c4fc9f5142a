"""The ``[init]`` options of ``omha.toml``, with the defaults of the original Cluster::Init."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import ConfigError


@dataclass(frozen=True)
class InitOptions:
    """How the local init stops, throttles and times out processes.

    :param stop_grace: seconds to wait before SIGINT, before SIGTERM, before SIGKILL when stopping an entry
        (the original: immediately, +5 s, +10 s). Each step is skipped once the whole process group is gone.
        A SIGINT that comes in the first milliseconds of an entry can be lost (dash catches SIGINT, and so
        does its forked child until it execs the command); the SIGTERM step then stops it.
    :param respawn_limit: a respawn entry restarted more than this many times in a row, each less than
        ``respawn_window`` seconds after the previous start, is "respawning too rapidly"...
    :param respawn_pause: ...and is paused this many seconds before it is started again.
    :param agent_timeout: seconds a resource agent's acquire, check or release may take before it is killed.
    :param test_timeout: seconds a ``test`` entry may run; one still running then is stopped and counts as failed
        (tests run one after another, so one that hangs would otherwise hold its group in STARTING forever).
    :param stop_timeout: seconds an entry at level ``stop`` (a cleanup command run as the group stops) may run
        before it is stopped with the ``stop_grace`` signals.
    :param wait_failure: what a ``wait`` entry that exits non-zero does: ``fail`` (the default; the group is
        FAILED and the entries after it are not started, so a half-started group is not left running) or
        ``continue`` (as in Cluster::Init: the entry is marked failed and the next entry starts). A cltab
        setting line ``:::wait_failure:continue`` overrides it for that cltab.
    :param cgroup: ``auto``: hold each child and all its descendants in a cgroup v2 of its own when this machine
        allows it (a writable ``cgroup2`` mount), else track them by an environment marker; ``off``: always the
        marker (see :mod:`omha_core.init.cells`).
    :param agent_host: ``auto``: where children are held in cgroups, resource-agent actions are forked by a
        long-lived agent host that has imported the agents already, instead of each starting Python (see
        :mod:`omha_core.init.host`); ``off``: every action starts a process of its own.
    """

    stop_grace: tuple[float, float, float] = (0.0, 5.0, 10.0)
    respawn_limit: int = 5
    respawn_window: float = 1.0
    respawn_pause: float = 60.0
    agent_timeout: float = 60.0
    test_timeout: float = 120.0
    stop_timeout: float = 60.0
    wait_failure: str = "fail"
    cgroup: str = "auto"
    agent_host: str = "auto"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> InitOptions:
        """Options from ``config.section("init")``; missing keys take the defaults, unknown keys are ignored
        (the configuration schema is what rejects typos).

        :raises ConfigError: a value is invalid; the message names the key and what is expected.
        """
        options = dict(options or {})
        checks: dict[str, Any] = {
            "stop_grace": cv.grace_list,
            "respawn_limit": cv.positive_int,
            "respawn_window": cv.positive_float,
            "respawn_pause": cv.non_negative_float,
            "agent_timeout": cv.positive_float,
            "test_timeout": cv.positive_float,
            "stop_timeout": cv.positive_float,
            "wait_failure": cv.one_of("fail", "continue"),
            "cgroup": cv.one_of("auto", "off"),
            "agent_host": cv.one_of("auto", "off"),
        }
        values: dict[str, Any] = {}
        for key, value in options.items():
            if key not in checks:
                continue
            if key == "stop_grace" and isinstance(value, tuple):
                value = list(value)
            try:
                values[key] = checks[key](value)
            except vol.Invalid as exc:
                raise ConfigError(f"[init] {key}: {exc.msg}") from None
        if "stop_grace" in values:
            values["stop_grace"] = tuple(values["stop_grace"])
        return cls(**values)

    def stop_steps(self) -> list[tuple[int, float]]:
        """``(signal, delay before it)`` for stopping a shell command: SIGINT, SIGTERM, SIGKILL."""
        return list(zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), self.stop_grace, strict=True))

    def agent_stop_steps(self) -> list[tuple[int, float]]:
        """For a resource agent's monitor: SIGTERM (it releases, then exits), SIGKILL after ``agent_timeout``."""
        return [(signal.SIGTERM, 0.0), (signal.SIGKILL, self.agent_timeout)]
