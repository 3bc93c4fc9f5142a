"""The ``@file PATH`` resource agent: a marker file that exists while the resource is held.

The smallest real resource: it pins the resource-agent mechanism (acquire / release / monitor / check, and
re-acquire under respawn) in tests without root, and is handy for sites that signal "this node is active"
to other software through a file.
"""

from __future__ import annotations

import os

from omha_core.errors import ResourceError
from omha_core.fsutil import atomic_write
from omha_core.resources import ResourceAgent


class FileAgent(ResourceAgent):
    """``@file /path/to/marker [content=TEXT]``."""

    monitor_interval = 0.2
    option_names = frozenset()  # no [agents.file] options

    @property
    def path(self) -> str:
        if len(self.args) != 1:
            raise ResourceError(f"@file takes exactly one path, got {len(self.args)} arguments")
        return self.args[0]

    def validate(self) -> None:
        if not os.path.isabs(self.path):
            raise ResourceError(f"@file: {self.path!r} is not an absolute path")

    def acquire(self) -> None:
        try:
            atomic_write(self.path, self.params.get("content", "held\n"))
        except OSError as exc:
            raise ResourceError(f"@file: cannot create {self.path}: {exc.strerror}") from None

    def release(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ResourceError(f"@file: cannot remove {self.path}: {exc.strerror}") from None

    def monitor(self) -> bool:
        return os.path.exists(self.path)

    def check(self) -> None:
        parent = os.path.dirname(self.path) or "/"
        if not os.path.isdir(parent):
            raise ResourceError(f"@file: directory {parent} does not exist on this node")
        if not os.access(parent, os.W_OK):
            raise ResourceError(f"@file: directory {parent} is not writable on this node")
