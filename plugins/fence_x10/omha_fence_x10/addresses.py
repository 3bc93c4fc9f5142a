"""X10 addresses (``"A1"`` .. ``"P16"``): parsing, validation and the CM11A's 4-bit codes.

A node map value names the appliance module(s) a node's power cord goes through, as a house code letter A-P
followed by a unit number 1-16. Both interfaces take the same addresses; only their wire encodings differ
(the CM11A's table is here, the FireCracker's is in :mod:`omha_fence_x10.cm17a_frames`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import voluptuous as vol

HOUSES = "ABCDEFGHIJKLMNOP"
_ADDRESS = re.compile(r"^\s*([A-Za-z])\s*0*([0-9]{1,2})\s*$")

#: The X10 4-bit code of house codes A-P and, with the same table, of unit codes 1-16 (the power-line
#: encoding the CM11A speaks: A / 1 = 0110, B / 2 = 1110, ...); not a binary sequence.
X10_CODES: tuple[int, ...] = (0x6, 0xE, 0x2, 0xA, 0x1, 0x9, 0x5, 0xD, 0x7, 0xF, 0x3, 0xB, 0x0, 0x8, 0x4, 0xC)


@dataclass(frozen=True, order=True)
class X10Address:
    """One X10 module address: house code ``A``-``P`` and unit 1-16."""

    house: str
    unit: int

    def __str__(self) -> str:
        return f"{self.house}{self.unit}"

    @property
    def house_code(self) -> int:
        """The house's 4-bit X10 code (CM11A encoding)."""
        return X10_CODES[HOUSES.index(self.house)]

    @property
    def unit_code(self) -> int:
        """The unit's 4-bit X10 code (CM11A encoding)."""
        return X10_CODES[self.unit - 1]


class BadAddress(ValueError):
    """A string is not an X10 address; the message says what is expected."""


def parse_address(value: object) -> X10Address:
    """Parse ``"A1"`` (case and spaces forgiven) into an :class:`X10Address`, or raise :class:`BadAddress`."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    match = _ADDRESS.match(text) if text is not None else None
    if not match:
        raise BadAddress(f"bad X10 address {value!r}: expected a house code A-P and a unit 1-16, like 'A1'")
    house, unit = match.group(1).upper(), int(match.group(2))
    if house not in HOUSES:
        raise BadAddress(f"bad X10 address {value!r}: house code {house!r} is not one of A-P")
    if not 1 <= unit <= 16:
        raise BadAddress(f"bad X10 address {value!r}: unit {unit} is not in 1-16")
    return X10Address(house, unit)


def parse_targets(targets: list[str]) -> list[X10Address]:
    """Parse a node's targets; duplicates are dropped, order kept. Raises :class:`BadAddress`."""
    out: list[X10Address] = []
    for t in targets:
        addr = parse_address(t)
        if addr not in out:
            out.append(addr)
    if not out:
        raise BadAddress("no X10 address given: expected at least one, like 'A1'")
    return out


def address_of_codes(house_code: int, unit_code: int) -> X10Address:
    """The address whose 4-bit CM11A codes are ``house_code`` and ``unit_code``."""
    return X10Address(HOUSES[X10_CODES.index(house_code)], X10_CODES.index(unit_code) + 1)


def house_of_code(house_code: int) -> str:
    """The house letter of a 4-bit CM11A house code."""
    return HOUSES[X10_CODES.index(house_code & 0xF)]


def x10_targets(value: Any) -> list[str]:
    """Validator for a node map value: one address or a list, returned normalised (``["A1"]``)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise vol.Invalid("expected at least one X10 address, like 'A1'")
    out = []
    for v in values:
        try:
            out.append(str(parse_address(v)))
        except BadAddress as exc:
            raise vol.Invalid(str(exc)) from None
    return out
