"""The CM17A "FireCracker" RF frame: 40 bits, ``D5 AA hi lo AD``, sent most significant bit first.

Facts (as bottlerocket's ``br`` encodes them): the two data bytes carry the house code in the high nibble of
``hi``, bit ``0x04`` of ``hi`` for units 9-16, the unit within its group of eight in bits ``0x10``, ``0x08``
and ``0x40`` of ``lo``, and ``0x20`` of ``lo`` for OFF. House A unit 3 ON is ``d5 aa 60 08 ad``; house B unit 12
OFF is ``d5 aa 74 38 ad``.
"""

from __future__ import annotations

from omha_fence_x10.addresses import HOUSES, X10Address

HEADER = bytes([0xD5, 0xAA])
FOOTER = bytes([0xAD])

#: the FireCracker's 4-bit house codes A-P (high nibble of ``hi``); not the power-line encoding
HOUSE_NIBBLES: tuple[int, ...] = (0x6, 0x7, 0x4, 0x5, 0x8, 0x9, 0xA, 0xB, 0xE, 0xF, 0xC, 0xD, 0x0, 0x1, 0x2, 0x3)
#: ``lo`` bits of units 1-8 (and, with ``UPPER_UNITS`` in ``hi``, of units 9-16)
UNIT_BITS: tuple[int, ...] = (0x00, 0x10, 0x08, 0x18, 0x40, 0x50, 0x48, 0x58)
UPPER_UNITS = 0x04
OFF_BIT = 0x20


def frame(addr: X10Address, on: bool) -> bytes:
    """The 5-byte frame that switches the module at ``addr`` on or off."""
    hi = HOUSE_NIBBLES[HOUSES.index(addr.house)] << 4
    if addr.unit > 8:
        hi |= UPPER_UNITS
    lo = UNIT_BITS[(addr.unit - 1) % 8]
    if not on:
        lo |= OFF_BIT
    return HEADER + bytes([hi, lo]) + FOOTER


def bits(data: bytes) -> list[int]:
    """The bits of ``data``, most significant first: the order the lines send them."""
    return [byte >> (7 - i) & 1 for byte in data for i in range(8)]
