"""``@probe PATH [sleep=SECONDS]``: a test resource agent that records how its action process was made.

Named to the init's children through ``$OMHA_AGENT_CLASSES`` (``probe=tests.core.probe_agent:ProbeAgent``), as
the daemon names installed agents, so that both the agent host and a started ``python -m omha_core.agent``
can find it. ``acquire`` writes what the process sees of itself to PATH as JSON (pid, parent, session,
process group, cgroup, working directory, open descriptors, blocked and ignored signals, its environment's
OMHA variables, what stdin is), then sleeps ``sleep`` seconds (to be timed out); ``release`` removes PATH;
``check`` passes unless PATH's directory is missing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omha_core.errors import ResourceError
from omha_core.fsutil import atomic_write
from omha_core.resources import ResourceAgent

#: the value of ``$OMHA_AGENT_CLASSES`` that names this agent
CLASSES = "probe=tests.core.probe_agent:ProbeAgent"


def _status_field(name: str) -> str:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return line.split()[1]
    return ""


def describe_self() -> dict[str, object]:
    """What this process is: what the init promises every child it starts."""
    with open("/proc/self/cgroup") as fh:
        cgroup = [line.rstrip("\n") for line in fh if line.startswith("0::")]
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "pgid": os.getpgid(0),
        "cgroup": cgroup[0][3:] if cgroup else None,
        # the directory's own descriptor is listed too, and closed by the time the list is checked
        "fds": {
            int(fd): os.readlink(f"/proc/self/fd/{fd}")
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        },
        "stdin": os.readlink("/proc/self/fd/0"),
        "cwd": os.getcwd(),
        "comm": Path("/proc/self/comm").read_text().strip(),
        "sigblk": int(_status_field("SigBlk"), 16),
        "sigign": int(_status_field("SigIgn"), 16),
        "env": {k: v for k, v in os.environ.items() if k.startswith("OMHA_") and k != "OMHA_AGENT_CLASSES"},
    }


class ProbeAgent(ResourceAgent):
    """``@probe PATH [sleep=SECONDS]``."""

    monitor_interval = 0.1
    option_names = frozenset()

    @property
    def path(self) -> str:
        if len(self.args) != 1:
            raise ResourceError(f"@probe takes exactly one path, got {len(self.args)} arguments")
        return self.args[0]

    def validate(self) -> None:
        if not os.path.isabs(self.path):
            raise ResourceError(f"@probe: {self.path!r} is not an absolute path")

    def acquire(self) -> None:
        atomic_write(self.path, json.dumps(describe_self()))
        time.sleep(float(self.params.get("sleep", "0")))

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def monitor(self) -> bool:
        return os.path.exists(self.path)

    def check(self) -> None:
        if not os.path.isdir(os.path.dirname(self.path)):
            raise ResourceError(f"@probe: {os.path.dirname(self.path)} does not exist")
