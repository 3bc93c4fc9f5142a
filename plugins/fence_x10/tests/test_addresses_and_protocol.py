"""X10 addresses and the CM11A byte encodings, checked against the protocol description's facts."""

from __future__ import annotations

import datetime as dt

import pytest
import voluptuous as vol
from omha_fence_x10 import cm11a_protocol as p
from omha_fence_x10.addresses import HOUSES, BadAddress, X10Address, parse_address, parse_targets, x10_targets

# protocol.txt section 1.1: house codes A-P and unit codes 1-16 share one (non-binary) 4-bit table
DOCUMENTED_CODES = ["0110", "1110", "0010", "1010", "0001", "1001", "0101", "1101"]
DOCUMENTED_CODES += ["0111", "1111", "0011", "1011", "0000", "1000", "0100", "1100"]


@pytest.mark.parametrize(("text", "house", "unit"), [("A1", "A", 1), ("p16", "P", 16), (" b 07 ", "B", 7)])
def test_addresses_parse_forgiving_case_spaces_and_zeros(text: str, house: str, unit: int) -> None:
    assert parse_address(text) == X10Address(house, unit)


@pytest.mark.parametrize(
    ("bad", "says"),
    [("Q1", "A-P"), ("A0", "1-16"), ("A17", "1-16"), ("1A", "like 'A1'"), ("", "like 'A1'"), (5, "like 'A1'")],
)
def test_bad_house_or_unit_is_named_with_what_is_expected(bad: object, says: str) -> None:
    with pytest.raises(BadAddress, match=says) as info:
        parse_address(bad)
    assert repr(bad) in str(info.value)


def test_targets_keep_order_and_drop_duplicates() -> None:
    assert parse_targets(["B2", "a1", "B2"]) == [X10Address("B", 2), X10Address("A", 1)]
    with pytest.raises(BadAddress, match="at least one"):
        parse_targets([])


def test_node_map_validator_normalises_or_explains() -> None:
    assert x10_targets("a01") == ["A1"]
    assert x10_targets(["C3", "c4"]) == ["C3", "C4"]
    with pytest.raises(vol.Invalid, match="house code 'Z' is not one of A-P"):
        x10_targets(["A1", "Z9"])


def test_every_address_frame_uses_the_documented_codes_and_checksum() -> None:
    for h, house in enumerate(HOUSES):
        for unit in range(1, 17):
            frame = p.address_frame(X10Address(house, unit))
            assert frame[0] == 0x04
            assert f"{frame[1] >> 4:04b}" == DOCUMENTED_CODES[h]
            assert f"{frame[1] & 0xF:04b}" == DOCUMENTED_CODES[unit - 1]
            assert p.checksum(frame) == (0x04 + frame[1]) & 0xFF
            # the upload decoder reads the same byte back as the same address
            assert p.parse_upload(0, frame[1:]) == [p.UploadItem(house, unit=unit)]


def test_the_issue_example_a1_off() -> None:
    a1 = X10Address("A", 1)
    assert p.address_frame(a1).hex(" ") == "04 66"
    assert p.checksum(p.address_frame(a1)) == 0x6A
    assert p.function_frame("A", "off").hex(" ") == "06 63"
    assert p.checksum(p.function_frame("A", "off")) == 0x69


def test_only_g1_has_a_checksum_that_looks_like_a_poll() -> None:
    addresses = [X10Address(h, u) for h in HOUSES for u in range(1, 17)]
    looks_like_poll = [str(a) for a in addresses if p.checksum(p.address_frame(a)) == p.POLL]
    functions = [(h, f) for h in HOUSES for f in ("on", "off", "status_request")]
    looks_like_poll += [f"{h} {f}" for h, f in functions if p.checksum(p.function_frame(h, f)) == p.POLL]
    assert looks_like_poll == ["G1"]


@pytest.mark.parametrize(
    ("when", "block"),
    [
        # Tuesday 5 March 2024 13:07:09: minutes 7+60 (odd hour), hours/2 = 6, year day 64 (0-based), mask T
        (dt.datetime(2024, 3, 5, 13, 7, 9), "9b 09 43 06 40 10 60"),
        # New Year's Eve of a leap year: year day 365 needs bit 8 (0x80 with the Tuesday bit 0x10)
        (dt.datetime(2024, 12, 31, 23, 59, 58), "9b 3a 77 0b 6d 90 60"),
        # Sunday is the mask's high bit, Saturday its low bit
        (dt.datetime(2024, 3, 3, 0, 0, 0), "9b 00 00 00 3e 40 60"),
        (dt.datetime(2024, 3, 2, 0, 0, 0), "9b 00 00 00 3d 01 60"),
    ],
)
def test_set_clock_block(when: dt.datetime, block: str) -> None:
    assert p.set_clock_block(when).hex(" ") == block


def test_set_clock_checksum_covers_the_six_bytes_after_the_header() -> None:
    block = p.set_clock_block(dt.datetime(2024, 3, 5, 13, 7, 9))
    assert p.checksum(block[1:]) == 0x02


def test_upload_decoding_with_dim_amount_and_status() -> None:
    # A1 address, A dim by 0x20 (amount byte is not flagged), then A status on
    items = p.parse_upload(0b1010, bytes([0x66, 0x64, 0x20, 0x6D]))
    assert items == [
        p.UploadItem("A", unit=1),
        p.UploadItem("A", function="dim", dim=0x20),
        p.UploadItem("A", function="status_on"),
    ]
