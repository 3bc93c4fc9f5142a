"""Children's output to the daemon's log, one record per line, tagged ``group/tag: line``.

Every child gets one pipe for both stdout and stderr; the event loop reads it without blocking. The pipe is
read until end-of-file, which may come after the child itself exited (a background grandchild may still hold
it), so a reader lives independently of the process it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import os

#: a line longer than this is logged in pieces rather than buffered without bound
MAX_LINE = 8192


class LineLogger:
    """Reads the pipe ``fd`` (taking ownership of it) and logs each line as ``label: line``."""

    def __init__(self, fd: int, label: str, logger: logging.Logger, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = fd
        self.label = label
        self.logger = logger
        self.loop = loop
        self._partial = b""
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.logger.warning("%s: reading output failed: %s", self.label, exc)
            data = b""
        if not data:
            self.close()
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        while len(self._partial) > MAX_LINE:
            lines.append(self._partial[:MAX_LINE])
            self._partial = self._partial[MAX_LINE:]
        for line in lines:
            self._log(line)

    def _log(self, line: bytes) -> None:
        self.logger.info("%s: %s", self.label, line.rstrip(b"\r").decode("utf-8", "replace"))

    def close(self) -> None:
        """Stop reading, log a last unterminated line, close the pipe."""
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self._partial:
            self._log(self._partial)
            self._partial = b""
