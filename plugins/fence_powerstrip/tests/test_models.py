"""Model choice from sysObjectID, as ClusterLabs' fence_apc_snmp makes it."""

from __future__ import annotations

import pytest
from omha_fence_powerstrip.models import MASTERSWITCH, MASTERSWITCH_V6, RACK_PDU, UnsupportedModel, model_for


@pytest.mark.parametrize(
    ("sys_object_id", "model"),
    [
        ("1.3.6.1.4.1.318.1.3.4.5", RACK_PDU),
        (".1.3.6.1.4.1.318.1.3.4.5", RACK_PDU),  # net-snmp style, leading dot
        ("1.3.6.1.4.1.318.1.3.4.6", MASTERSWITCH_V6),
        ("1.3.6.1.4.1.318.1.3.4.8", MASTERSWITCH),  # AP7902B: not in the table, MasterSwitch fallback
        ("1.3.6.1.4.1.9.1.1", MASTERSWITCH),  # not even APC: the objects every APC PDU has
    ],
)
def test_model_for_sys_object_id(sys_object_id: str, model: object) -> None:
    assert model_for(sys_object_id) is model


def test_rack_pdu_writes_command_and_reads_status_objects() -> None:
    assert RACK_PDU.control_oid(3) == "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3"
    assert RACK_PDU.status_oid(3) == "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3"
    assert MASTERSWITCH.control_oid(3) == MASTERSWITCH.status_oid(3) == "1.3.6.1.4.1.318.1.1.4.4.2.1.3.3"
    assert MASTERSWITCH_V6.control_oid(3) == RACK_PDU.control_oid(3)
    assert MASTERSWITCH_V6.status_oid(3) == MASTERSWITCH.status_oid(3)
    assert RACK_PDU.commands == {"on": 1, "off": 2}


def test_states_other_than_on_off_are_unknown() -> None:
    assert MASTERSWITCH.state_of(1) == "on"
    assert MASTERSWITCH.state_of(2) == "off"
    assert MASTERSWITCH.state_of(3) is None  # outletReboot in progress: not "off", never fenced on it
    assert MASTERSWITCH.state_of(4) is None  # outletUnknown


def test_masterswitch_plus_is_refused_with_the_alternative() -> None:
    with pytest.raises(UnsupportedModel, match=r"MasterSwitch Plus.*fence_agent"):
        model_for("1.3.6.1.4.1.318.1.3.4.4")
