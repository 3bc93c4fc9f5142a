"""Where the daemon's log goes: journald, a log file, syslog, or plain stderr.

``[daemon] log`` chooses:

- unset: stderr. When systemd started us (``$JOURNAL_STREAM`` names the device and inode of our stderr), every
  line starts with a ``<N>`` priority prefix (sd-daemon(3)), so ``journalctl -p err`` filters by level, and
  carries no timestamp of its own (the journal stamps each line);
- ``"syslog"``: the local syslog socket (``[daemon] syslog_socket``, default ``/dev/log``) with the facility
  ``[daemon] log_facility`` (default ``daemon``, as the original);
- a path: that file, reopened when logrotate moves it away (no ``copytruncate`` needed).

Children's output reaches the same handler through the ``omha.init`` logger, each line tagged ``group/tag:``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from omha_core.config import Config

#: Python levels -> syslog(3) priorities, as sd-daemon(3) prefixes expect them
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
SYSLOG = "syslog"


def priority(levelno: int) -> int:
    """The syslog priority of a Python log level (DEBUG and below -> 7)."""
    for level, prio in PRIORITIES:
        if levelno >= level:
            return prio
    return 7


class JournalFormatter(logging.Formatter):
    """``<N>node logger LEVEL message``: journald reads the priority from the prefix and stamps the time itself.

    A multi-line message becomes one journal entry per line, each with the prefix, so a continuation line is
    not logged at the default priority."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def journal_stream_is_stderr(stream: IO[str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``DEVICE:INODE``) is our stderr: systemd connected it to the journal.

    The variable is inherited by processes whose stderr goes elsewhere, hence the comparison (systemd.exec(5))."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    target = stream if stream is not None else sys.stderr
    try:
        st = os.fstat(target.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class FallbackSysLogHandler(logging.handlers.SysLogHandler):
    """A syslog handler that writes a record it could not send to stderr instead (syslogd not running yet, a
    wrong ``syslog_socket``), saying why once; it tries the socket again for every record."""

    failing = False
    fallback: logging.Formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if not self.failing:
            sys.stderr.write(f"omha: cannot log to syslog through {self.address}: {exc}; logging to stderr\n")
            self.failing = True
        try:
            sys.stderr.write(self.fallback.format(record) + "\n")
        except Exception:  # pragma: no cover - nowhere left to complain
            pass


def make_handler(config: Config, node: str) -> logging.Handler:
    """The handler ``[daemon] log`` asks for, with its formatter (see the module docstring)."""
    daemon = config.section("daemon")
    target = config.log_path
    handler: logging.Handler
    if target == SYSLOG:
        facility = logging.handlers.SysLogHandler.facility_names[str(daemon.get("log_facility", "daemon"))]
        address = str(daemon.get("syslog_socket") or "/dev/log")
        handler = FallbackSysLogHandler(address=address, facility=facility)
        handler.ident = f"omha[{os.getpid()}]: "
        handler.fallback = logging.Formatter(f"%(asctime)s {node} %(name)s %(levelname)s %(message)s")
        handler.setFormatter(logging.Formatter(f"{node} %(name)s %(levelname)s %(message)s"))
    elif target:
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(target)
        handler.setFormatter(logging.Formatter(f"%(asctime)s {node} %(name)s %(levelname)s %(message)s"))
    else:
        handler = logging.StreamHandler()
        if journal_stream_is_stderr():
            handler.setFormatter(JournalFormatter(f"{node} %(name)s %(levelname)s %(message)s"))
        else:
            handler.setFormatter(logging.Formatter(f"%(asctime)s {node} %(name)s %(levelname)s %(message)s"))
    return handler


def setup_logging(config: Config, node: str) -> None:
    """Send the ``omha`` loggers to the handler of ``[daemon] log``, each line naming the node."""
    level = str(config.section("daemon").get("log_level", "info")).upper()
    root = logging.getLogger("omha")
    root.handlers[:] = [make_handler(config, node)]
    root.setLevel(level)
    root.propagate = False
