"""Exception types shared by the core and plugins.

Every error meant for an operator carries enough context to act on: a file and line for input files, a key
path for configuration, the plugin name for plugin failures.
"""

from __future__ import annotations

from dataclasses import dataclass


class OmhaError(Exception):
    """Base class of every error omha raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: ``FILE:LINE: message`` when printed."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class ParseError(OmhaError):
    """An input file (cltab, hactl, status) is invalid. Holds every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(OmhaError):
    """omha.toml is invalid or names something (a plugin, a device kind) that is not installed."""


class ResourceError(OmhaError):
    """A resource agent could not acquire, release or check its resource; the message says why."""


class FenceError(OmhaError):
    """A fence device failed; the message names the device and the reason, never a credential."""


class StoreError(OmhaError):
    """The status store could not be read or written."""


class StoreUnavailable(StoreError):
    """The store did not answer (nothing listens, timeouts): it may later, unlike a refusal or a bad setting.

    A daemon starting up waits for it (nothing runs on the node before it has joined); the CLI reports it."""


class ConflictError(StoreError):
    """A compare-and-swap write lost: someone else changed the document first."""
