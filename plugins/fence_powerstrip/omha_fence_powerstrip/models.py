"""Which PowerNet-MIB objects switch and read an APC outlet, per PDU model.

APC PDUs speak several generations of the PowerNet MIB. The agent's ``sysObjectID`` says which one, and the
choice follows ClusterLabs' ``fence_apc_snmp`` so that both agree on the same hardware:

- ``...318.1.3.4.5`` Rack PDU: write ``rPDUOutletControlOutletCommand``, read ``rPDUOutletStatusOutletState``.
- ``...318.1.3.4.6`` MasterSwitch with v6 firmware: write ``rPDUOutletControlOutletCommand``, read
  ``sPDUOutletCtl``.
- ``...318.1.3.4.4`` MasterSwitch Plus (outlets per daisy-chained unit): not handled natively.
- anything else: the MasterSwitch objects, which every APC PDU implements: ``sPDUOutletCtl`` for both.

Pure data, no SNMP library: imported by ``omha check`` and tests without pysnmp.
"""

from __future__ import annotations

from dataclasses import dataclass

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"

_RPDU_COMMAND = "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4"  # rPDUOutletControlOutletCommand
_RPDU_STATE = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4"  # rPDUOutletStatusOutletState
_RPDU_NAME = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.2"  # rPDUOutletStatusOutletName
_SPDU_CTL = "1.3.6.1.4.1.318.1.1.4.4.2.1.3"  # sPDUOutletCtl
_SPDU_NAME = "1.3.6.1.4.1.318.1.1.4.4.2.1.4"  # sPDUOutletCtlName


@dataclass(frozen=True)
class PduModel:
    """The MIB objects of one PDU generation.

    :param key: the name an operator gives in ``model = ...`` to skip detection.
    :param label: a human description for messages.
    :param control: the column written to switch outlet N (``<control>.N``).
    :param status: the column read for outlet N's state.
    :param names: the column holding the outlet names (walked to resolve a name to a number).
    :param commands: action -> the INTEGER written to ``control``.
    :param states: INTEGER read from ``status`` -> ``"on"`` / ``"off"``; anything else is unknown.
    """

    key: str
    label: str
    control: str
    status: str
    names: str
    commands: dict[str, int]
    states: dict[int, str]

    def control_oid(self, outlet: int) -> str:
        return f"{self.control}.{outlet}"

    def status_oid(self, outlet: int) -> str:
        return f"{self.status}.{outlet}"

    def state_of(self, value: int) -> str | None:
        """``"on"``, ``"off"``, or None for any other value (rebooting, pending, unknown)."""
        return self.states.get(value)


_ON_OFF = {1: "on", 2: "off"}
_COMMANDS = {"on": 1, "off": 2}

RACK_PDU = PduModel("rack_pdu", "APC Rack PDU", _RPDU_COMMAND, _RPDU_STATE, _RPDU_NAME, _COMMANDS, _ON_OFF)
MASTERSWITCH_V6 = PduModel(
    "masterswitch_v6", "APC MasterSwitch (firmware v6)", _RPDU_COMMAND, _SPDU_CTL, _SPDU_NAME, _COMMANDS, _ON_OFF
)
MASTERSWITCH = PduModel("masterswitch", "APC MasterSwitch", _SPDU_CTL, _SPDU_CTL, _SPDU_NAME, _COMMANDS, _ON_OFF)

MODELS: dict[str, PduModel] = {m.key: m for m in (RACK_PDU, MASTERSWITCH_V6, MASTERSWITCH)}
MODEL_CHOICES: tuple[str, ...] = ("auto", *MODELS)

BY_SYS_OBJECT_ID: dict[str, PduModel] = {
    "1.3.6.1.4.1.318.1.3.4.5": RACK_PDU,
    "1.3.6.1.4.1.318.1.3.4.6": MASTERSWITCH_V6,
}
MASTERSWITCH_PLUS = "1.3.6.1.4.1.318.1.3.4.4"


class UnsupportedModel(Exception):
    """The PDU is a model this plugin does not drive natively; the message says what to use instead."""


def model_for(sys_object_id: str) -> PduModel:
    """The model for an agent's ``sysObjectID`` (dotted, with or without a leading dot).

    :raises UnsupportedModel: for a MasterSwitch Plus, whose outlets are addressed per unit.
    """
    oid = sys_object_id.strip().lstrip(".")
    if oid == MASTERSWITCH_PLUS:
        raise UnsupportedModel(
            f"sysObjectID {oid} is an APC MasterSwitch Plus (outlets addressed per unit), which apc_snmp does not "
            'drive; use kind = "fence_agent" with fence_apc_snmp and --switch'
        )
    return BY_SYS_OBJECT_ID.get(oid, MASTERSWITCH)
