"""What each signal does to ``omha daemon``.

- SIGTERM, SIGINT, SIGQUIT: the graceful stop, as ``omha shutdown``: every local group is stopped through its
  stop steps while the node keeps heartbeating, claims are released, the daemon exits 0. (SIGQUIT's default
  action, a core dump, would kill the daemon outright and its guard would then kill every group.)
- SIGHUP: re-read ``cltab`` and ``hactl`` now, without stopping anything: the daemon adopts the newest valid
  version of each (an invalid one is refused and logged, the last good one keeps running). The daemon re-reads
  them every heartbeat anyway; SIGHUP only makes it immediate, as ``init q`` / ``kill -HUP`` users expect.
  ``omha.toml`` itself is not re-read: its changes need a restart of the daemon (``systemctl restart omha``,
  which stops the groups here and lets the others take them over). SIGHUP used to kill the daemon (its default
  action), and its guard then killed every group on the node.

Both SIGHUP and SIGQUIT may be sent by accident (a closed terminal, a stray ``kill -HUP`` to every process, a
Ctrl-\\): neither may take the groups down ungracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger("omha.daemon")

#: the signals that stop the daemon gracefully
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def install_signal_handlers(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event, wake: asyncio.Event) -> None:
    """Handle the daemon's signals on ``loop``: stop signals set ``stopping``, SIGHUP sets ``wake`` (the cycle
    then runs at once and re-reads cltab and hactl)."""

    def stop(sig: signal.Signals) -> None:
        log.info("%s: stopping gracefully", sig.name)
        stopping.set()

    def reload() -> None:
        log.info("SIGHUP: re-reading cltab and hactl now (omha.toml changes need a restart)")
        wake.set()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
    loop.add_signal_handler(signal.SIGHUP, reload)
