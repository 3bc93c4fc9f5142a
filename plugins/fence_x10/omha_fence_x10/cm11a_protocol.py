"""The CM11A's serial byte protocol as pure functions: frames, checksums, the set-clock block, uploads.

Facts from the interface's protocol description (heyu's ``protocol.txt``), 4800 baud 8N1:

- A standard transmission is two bytes, *header:code*. Header bit 2 is always 1, bit 1 says function (1) or
  address (0), bit 0 standard (0) or extended (1), bits 7-3 a dim amount: an address is ``0x04``, a function
  without dim ``0x06``. The code byte is the house code's 4 bits, then the unit's (address) or the
  function's (function) 4 bits.
- The interface answers the sum of the bytes (mod 256) as a checksum; the PC answers ``0x00`` when it is
  right (else it sends the frame again), and the interface answers ``0x55`` once the frame went out on the
  power line. House A unit 1 OFF: ``04 66`` / ``6A`` / ``00`` / ``55`` / ``06 63`` / ``69`` / ``00`` / ``55``.
- When it has received something from the power line the interface polls with ``0x5A`` (about once a
  second) and ignores everything else until the PC answers ``0xC3``; it then uploads its buffer: a size byte
  (the count of bytes that follow, at most 9), a function/address mask (bit *i* set: data byte *i* is a
  function) and the data bytes.
- After a power failure it asks for the time with ``0xA5`` (repeated) until the PC sends the set-clock block:
  ``0x9B``, seconds, minutes (0-119), hours / 2, year day bits 0-7, year day bit 8 and the day-of-week mask
  (SMTWTFS), and the monitored house code with four flag bits. The checksum covers the six bytes after
  ``0x9B``; ``0x00`` / ``0x55`` follow as for a frame.
- A checksum can itself be ``0x5A`` (only the address of house G unit 1: ``04 56``), which looks like a poll.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from omha_fence_x10.addresses import X10Address, address_of_codes, house_of_code

ADDRESS_HEADER = 0x04
FUNCTION_HEADER = 0x06
ACK = 0x00
READY = 0x55
POLL = 0x5A
PC_READY = 0xC3
CLOCK_REQUEST = 0xA5
SET_CLOCK = 0x9B
#: the largest upload: the mask byte and 8 data bytes
MAX_UPLOAD = 9

#: X10 function codes (the low nibble of a function frame's code byte)
FUNCTIONS: dict[str, int] = {
    "all_units_off": 0x0,
    "all_lights_on": 0x1,
    "on": 0x2,
    "off": 0x3,
    "dim": 0x4,
    "bright": 0x5,
    "all_lights_off": 0x6,
    "extended_code": 0x7,
    "hail_request": 0x8,
    "hail_ack": 0x9,
    "preset_dim_1": 0xA,
    "preset_dim_2": 0xB,
    "extended_data": 0xC,
    "status_on": 0xD,
    "status_off": 0xE,
    "status_request": 0xF,
}
FUNCTION_NAMES: dict[int, str] = {code: name for name, code in FUNCTIONS.items()}


def checksum(data: bytes) -> int:
    """The CM11A checksum: the sum of the bytes, modulo 256."""
    return sum(data) & 0xFF


def address_frame(addr: X10Address) -> bytes:
    """The header:code pair that addresses one module (``04 66`` for A1)."""
    return bytes([ADDRESS_HEADER, addr.house_code << 4 | addr.unit_code])


def function_frame(house: X10Address | str, function: str) -> bytes:
    """The header:code pair of a function for a house code (``06 63`` for A OFF)."""
    house_code = house.house_code if isinstance(house, X10Address) else X10Address(house, 1).house_code
    return bytes([FUNCTION_HEADER, house_code << 4 | FUNCTIONS[function]])


def set_clock_block(now: dt.datetime, monitored_house: str = "A", flags: int = 0) -> bytes:
    """The 7-byte answer to a clock request (``0x9B`` and six bytes), for local time ``now``.

    :param flags: bit 0 purge timers, bit 1 clear monitored status, bit 2 clear the battery timer; omha sends
        0 so that a fencing action never erases what an operator stored in the interface.
    """
    yday = now.timetuple().tm_yday - 1  # 0-based day of the year, 0..365
    sunday_first = (now.weekday() + 1) % 7  # Sunday 0 .. Saturday 6
    day_mask = 0x40 >> sunday_first  # S M T W T F S -> bits 6..0
    return bytes(
        [
            SET_CLOCK,
            now.second,
            now.minute + 60 * (now.hour % 2),
            now.hour // 2,
            yday & 0xFF,
            (yday >> 8 & 0x1) << 7 | day_mask,
            X10Address(monitored_house, 1).house_code << 4 | (flags & 0x7),
        ]
    )


@dataclass(frozen=True)
class UploadItem:
    """One entry of an interface upload: an address (``unit`` set) or a function (``function`` set)."""

    house: str
    unit: int | None = None
    function: str | None = None
    dim: int | None = None


def parse_upload(mask: int, data: bytes) -> list[UploadItem]:
    """Decode an upload's data bytes with their function/address mask (bit *i* set: byte *i* is a function).

    A dim or bright function is followed by its amount byte; an extended code by its unit, data and command
    bytes, which are skipped (omha only looks for addresses, on/off and status replies).
    """
    items: list[UploadItem] = []
    i = 0
    while i < len(data):
        byte = data[i]
        if mask >> i & 1:
            name = FUNCTION_NAMES[byte & 0xF]
            house = house_of_code(byte >> 4)
            if name in ("dim", "bright") and i + 1 < len(data):
                items.append(UploadItem(house, function=name, dim=data[i + 1]))
                i += 2
                continue
            items.append(UploadItem(house, function=name))
            if name == "extended_code":
                break
        else:
            addr = address_of_codes(byte >> 4, byte & 0xF)
            items.append(UploadItem(addr.house, unit=addr.unit))
        i += 1
    return items


def describe(frame: bytes) -> str:
    """A human name for a header:code frame (``"address A1"``, ``"A off"``), for messages."""
    header, code = frame[0], frame[1]
    if header & 0x02:
        return f"{house_of_code(code >> 4)} {FUNCTION_NAMES[code & 0xF].replace('_', ' ')}"
    return f"address {address_of_codes(code >> 4, code & 0xF)}"
