"""An OCF agent's ``meta-data``: the parameters it accepts (which are required) and its advised action timeouts.

The XML is the ``resource-agent`` document of the OCF resource-agent API (``ra-api-1.dtd``, OCF 1.1)::

    <parameters><parameter name="ip" required="1" unique="1"><content type="string"/></parameter>...
    <actions><action name="start" timeout="20s"/><action name="monitor" timeout="20s" interval="10s"/>...
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omha_core.errors import ResourceError
from omha_resource_ocf.runner import parse_duration


@dataclass(frozen=True)
class Parameter:
    """One ``<parameter>``: its name, whether it must be given, and its default (None when it has none)."""

    name: str
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Metadata:
    """What ``meta-data`` says about an agent."""

    name: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    #: action name -> advised timeout in seconds (only the actions that give one)
    timeouts: dict[str, float] = field(default_factory=dict)
    #: the advised monitor interval in seconds, when the agent gives one
    monitor_interval: float | None = None
    actions: frozenset[str] = frozenset()

    def required(self) -> list[str]:
        """The names of the required parameters, in the agent's order."""
        return [p.name for p in self.parameters.values() if p.required]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def parse_metadata(text: str, agent: str) -> Metadata:
    """Parse the output of ``AGENT meta-data``.

    :raises ResourceError: when it is not a ``resource-agent`` XML document.
    """
    import xml.etree.ElementTree as ET  # here: loading the plugin (omha plugins) stays cheap (issue 19)

    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise ResourceError(f"{agent}: meta-data is not valid XML ({exc})") from None
    if root.tag != "resource-agent":
        raise ResourceError(f"{agent}: meta-data is a <{root.tag}> document, not <resource-agent>")
    params: dict[str, Parameter] = {}
    for p in root.iterfind("./parameters/parameter"):
        name = p.get("name")
        if not name:
            continue
        content = p.find("content")
        default = content.get("default") if content is not None else None
        params[name] = Parameter(name, _flag(p.get("required")), default)
    timeouts: dict[str, float] = {}
    interval = None
    names = set()
    for a in root.iterfind("./actions/action"):
        name = a.get("name")
        if not name:
            continue
        names.add(name)
        try:
            if a.get("timeout") and name not in timeouts:
                timeouts[name] = parse_duration(a.get("timeout", ""))
            if name == "monitor" and a.get("interval") and interval is None and not a.get("role"):
                interval = parse_duration(a.get("interval", "")) or None
        except ValueError:
            continue  # a malformed advice is no reason to refuse the agent: the defaults apply
    return Metadata(root.get("name") or agent, params, timeouts, interval, frozenset(names))
