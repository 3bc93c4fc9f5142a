"""Run one resource-agent action in its own process: ``python -m omha_core.agent NAME ACTION ARGS``.

The local init runs every ``@name args`` cltab entry through this module, so agents are supervised, timed
out and killed exactly like shell commands. Actions:

- ``acquire`` / ``release`` / ``check``: do it once; exit 0 on success, 1 with the reason on stderr.
- ``respawn``: acquire, then monitor every ``monitor_interval`` seconds; when the resource is found gone,
  exit 3 so the init restarts the entry (re-acquiring) under its rapid-respawn throttle. SIGTERM, SIGINT or
  SIGHUP (the daemon stopping the entry, or dying: the parent-death signal) release the resource, then exit 0.

Exit 2 means the agent is unknown or its arguments are invalid. The agent's options come from the
configuration named by ``$OMHA_CONFIG`` (``[agents.NAME]``), when set.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from omha_core.errors import OmhaError, ResourceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOST = 0, 1, 2, 3


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


def build_agent(name: str, argstring: str) -> object:
    """Instantiate agent ``name`` from the installed plugins with its configured options."""
    from omha_core.plugins import get_plugin_manager, lookup

    pm = get_plugin_manager()
    cls = lookup(pm, "omha_resource_agents", name, "resource agent")
    options = {}
    if os.environ.get("OMHA_CONFIG"):
        from omha_core.config import load_config

        options = dict(load_config(os.environ["OMHA_CONFIG"], pm).agent_options(name))
    agent = cls.from_command(argstring, options)
    agent.validate()
    return agent


def run(name: str, action: str, argstring: str) -> int:
    """Perform ``action`` with agent ``name``; return the process exit status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        agent = build_agent(name, argstring)
    except _Stop:
        return EXIT_OK
    except OmhaError as exc:
        print(f"@{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if action in ("acquire", "release", "check"):
            getattr(agent, action)()
            return EXIT_OK
        if action != "respawn":
            print(f"@{name}: unknown action {action!r}", file=sys.stderr)
            return EXIT_USAGE
        agent.acquire()  # type: ignore[attr-defined]
        interval = float(getattr(agent, "monitor_interval", 2.0))
        # the log's record that the resource is in place (and the point after which a loss exits 3, not 1)
        print(f"@{name} {argstring}: acquired; monitoring every {interval:g} s", file=sys.stderr, flush=True)
        while True:
            time.sleep(interval)
            try:
                healthy = agent.monitor()  # type: ignore[attr-defined]
            except (ResourceError, OSError) as exc:  # e.g. the interface vanished mid-check: lost, not failed
                print(f"@{name} {argstring}: monitor failed: {exc}", file=sys.stderr)
                healthy = False
            if not healthy:
                print(f"@{name} {argstring}: resource lost, re-acquiring", file=sys.stderr)
                return EXIT_LOST
    except _Stop:
        if action != "respawn":
            # an acquire or release cut short did not finish: never report it as done
            print(f"@{name} {argstring}: {action} interrupted by a signal", file=sys.stderr)
            return EXIT_FAILED
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            agent.release()  # type: ignore[attr-defined]
        except (ResourceError, OSError) as exc:
            print(f"@{name} {argstring}: release failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    except (ResourceError, OSError) as exc:
        print(f"@{name} {argstring}: {action} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``NAME ACTION [ARGSTRING]``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m omha_core.agent NAME acquire|release|check|respawn [ARGS]", file=sys.stderr)
        return EXIT_USAGE
    return run(args[0], args[1], " ".join(args[2:]))


if __name__ == "__main__":
    sys.exit(main())
