"""Exception types shared by the core and plugins.

Every error meant for an operator carries enough context to act on: a file and line for input files, a key
path for configuration, the plugin name for plugin failures.
"""

from __future__ import annotations


class OmhaError(Exception):
    """Base class of every error omha raises on purpose."""


class Problem:
    """One problem found in an input file: ``FILE:LINE: message`` when printed.

    An immutable value, written out rather than a frozen dataclass: every command imports this module, and
    ``dataclasses`` brings ``inspect`` (~10 ms of ``omha plugins``, issue 19)."""

    __slots__ = ("file", "line", "message")
    file: str
    line: int
    message: str

    def __init__(self, file: str, line: int, message: str) -> None:
        object.__setattr__(self, "file", file)
        object.__setattr__(self, "line", line)
        object.__setattr__(self, "message", message)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def _key(self) -> tuple[str, int, str]:
        return (self.file, self.line, self.message)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Problem(file={self.file!r}, line={self.line!r}, message={self.message!r})"

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
