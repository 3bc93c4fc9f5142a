"""Validators for resource agents' ``key=value`` parameters, shared so that no agent hand-rolls its own.

A :class:`~omha_core.resources.ResourceAgent` declares its parameters as a voluptuous dict schema,
``params_schema = {"arp_count": whole_number(0), "dad": yes_no, ...}``, the way a fence device declares
:attr:`~omha_core.fence_devices.FenceDevice.schema`; :func:`check_params` applies it to a cltab entry's
parameters (or its ``[agents.<name>]`` defaults) and raises :class:`~omha_core.errors.ResourceError` naming the
key, the value given and what is expected: ``arp_count='-1': expected a whole number, 0 or more``.

Start-up time matters here (issue 19): an agent runs in a child process per action, and importing voluptuous
costs more than the action's own work for most agents. The validators are plain callables, and
:func:`check_params` calls them directly; voluptuous is imported only on the error path, to build the
:class:`voluptuous.Invalid` each validator raises, so that the same schema works unchanged inside a
``voluptuous.Schema`` (the message is kept) and a valid entry never loads voluptuous at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from omha_core.errors import ResourceError

#: one parameter's validator: the raw value (a cltab word, or a TOML value from omha.toml) -> the checked value
Validator = Callable[[Any], Any]

_TRUE = frozenset({"yes", "true", "on", "1"})
_FALSE = frozenset({"no", "false", "off", "0"})


def _invalid(message: str) -> NoReturn:
    """Raise ``voluptuous.Invalid(message)``; voluptuous is imported here, on the error path only."""
    import voluptuous as vol

    raise vol.Invalid(message)


def yes_no(value: Any) -> bool:
    """A flag: ``yes``/``true``/``on``/``1`` or ``no``/``false``/``off``/``0`` (any case), or a TOML boolean."""
    if isinstance(value, bool):
        return value
    low = str(value).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    _invalid("expected yes or no")


def seconds(*, zero: bool = False, at_most: float | None = None) -> Validator:
    """A validator of a finite number of seconds, greater than zero (or zero or more with ``zero``), and at most
    ``at_most`` when given."""
    least = "zero or more" if zero else "greater than zero"
    expected = f"expected a number of seconds, {least}" + (f" (at most {at_most:g})" if at_most is not None else "")

    def check(value: Any) -> float:
        try:
            number = -1.0 if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = -1.0
        if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
            _invalid(expected)
        if at_most is not None and number > at_most:
            _invalid(expected)
        return number

    check.__doc__ = expected
    return check


def whole_number(minimum: int = 0) -> Validator:
    """A validator of a whole number, ``minimum`` or more (``"3"`` and ``3`` pass; ``3.5``, ``true`` do not)."""
    expected = f"expected a whole number, {minimum} or more"

    def check(value: Any) -> int:
        if isinstance(value, bool):
            _invalid(expected)
        try:
            number = int(value)
        except (TypeError, ValueError):
            _invalid(expected)
        if number < minimum or (isinstance(value, float) and value != number):
            _invalid(expected)
        return number

    check.__doc__ = expected
    return check


def check_params(schema: Mapping[str, Validator], values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Apply ``schema`` to every key of ``values`` it names; return the checked values (keys it does not name
    are returned unchanged: refusing unknown keys, with the agent's own list of what is known, is the agent's).

    :param prefix: put before each message (``"@mount: "``).
    :raises ResourceError: ``{prefix}{key}={value!r}: expected ...`` for the first key (in schema order) whose
        value is refused.
    """
    out = dict(values)
    for key, validator in schema.items():
        if key not in values:
            continue
        try:
            out[key] = validator(values[key])
        except Exception as exc:
            import voluptuous as vol  # the error path only

            if not isinstance(exc, vol.Invalid | ValueError):
                raise
            reason = exc.msg if isinstance(exc, vol.Invalid) else str(exc) or "invalid value"
            raise ResourceError(f"{prefix}{key}={values[key]!r}: {reason}") from None
    return out
