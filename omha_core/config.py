"""``omha.toml``: loading, validation against the core's and the plugins' schemas, and typed access.

The path is ``-c/--config``, else ``$OMHA_CONFIG``, else ``/etc/omha/omha.toml``. Every section is validated:
the core's own here, a plugin's through ``omha_config_schema``, each fence device against its kind's
schema. All problems are reported at once, each naming the key and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import ConfigError
from omha_core.secrets import SECRET_SUFFIXES as SECRET_SUFFIXES
from omha_core.secrets import is_secret as is_secret
from omha_core.secrets import read_secret as read_secret
from omha_core.secrets import redact as redact

if TYPE_CHECKING:
    import pluggy

    from omha_core.plugins import PluginHost

DEFAULT_PATH = "/etc/omha/omha.toml"

#: ``[daemon] log_facility`` values (those of syslog(3))
SYSLOG_FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp",
    *(f"local{i}" for i in range(8)),
)

#: ``[[alerts]]`` ``select`` values: the kinds of event an alert agent receives (omha_core/alerts.py)
KINDS = ("node", "fencing", "resource")
#: Pacemaker's default ``timestamp-format``
TIMESTAMP_FORMAT = "%H:%M:%S.%06N"

#: one ``[[alerts]]`` entry. Here rather than in omha_core/alerts.py (which runs them, and imports logging, signal
#: and hactl), so that reading omha.toml (``omha status``) does not import that module (CLI start-up, issue 19)
ALERT_SCHEMA = vol.Schema(
    {
        vol.Required("path"): cv.path,
        vol.Optional("recipient"): cv.string_or_list,
        vol.Optional("timeout", default=30.0): cv.positive_float,
        vol.Optional("select", default=list(KINDS)): [cv.one_of(*KINDS)],
        vol.Optional("timestamp_format", default=TIMESTAMP_FORMAT): cv.string,
    }
)

CORE_SCHEMA: dict[Any, Any] = {
    vol.Optional("node"): cv.identifier,
    vol.Optional("cluster", default={}): {
        vol.Optional("name", default="omha"): cv.identifier,
        vol.Optional("membership", default="sharedfs"): cv.identifier,
        vol.Optional("store", default="sharedfs"): cv.identifier,
    },
    vol.Optional("quorum", default={}): {
        vol.Optional("policy", default="majority"): cv.one_of("majority", "ratio", "two_node", "ignore"),
        vol.Optional("expected"): cv.positive_int,
        vol.Optional("ratio", default=0.6): vol.All(vol.Coerce(float), vol.Range(min=0.0, max=1.0)),
    },
    vol.Optional("sharedfs", default={}): {
        vol.Optional("path"): cv.path,
    },
    vol.Optional("timing", default={}): {
        vol.Optional("heartbeat", default=0.5): cv.positive_float,
        vol.Optional("dead_after", default=2.0): cv.positive_float,
        # after start-up, start nothing for this long (default: dead_after) so every node is heard first
        vol.Optional("settle"): cv.non_negative_float,
        # a node out of touch with the store this long stops its groups (default: dead_after / 2)
        vol.Optional("isolate_after"): cv.positive_float,
        # a group whose test (or plan, or a wait entry) FAILED on a node is not retried there for this long,
        # unless cltab or hactl change; then that node is a candidate again (a transient failure heals)
        vol.Optional("failed_retry", default=30.0): cv.positive_float,
    },
    vol.Optional("daemon", default={}): {
        vol.Optional("socket"): cv.path,
        vol.Optional("state_dir"): cv.path,
        # a file path, "syslog", or unset: stderr (journald when systemd runs us); see omha_core/logsetup.py
        vol.Optional("log"): cv.path,
        vol.Optional("log_level", default="info"): cv.one_of("debug", "info", "warning", "error", "critical"),
        vol.Optional("log_facility", default="daemon"): cv.one_of(*SYSLOG_FACILITIES),
        vol.Optional("syslog_socket", default="/dev/log"): cv.path,
    },
    # metrics and the status page (omha_core/web/); off unless ``listen`` is set
    vol.Optional("http", default={}): {
        vol.Optional("listen"): cv.listen_address,
        # actions on the page and the API (tell) need this token; without it they are refused. Like every
        # secret it may be given as token_file (a path) or token_env (an environment variable)
        vol.Optional("token"): vol.All(str, vol.Length(min=8, msg="expected a token of at least 8 characters")),
        vol.Optional("token_file"): cv.path,
        vol.Optional("token_env"): cv.string,
    },
    vol.Optional("init", default={}): {
        vol.Optional("stop_grace", default=[0.0, 5.0, 10.0]): cv.grace_list,
        vol.Optional("respawn_limit", default=5): cv.positive_int,
        vol.Optional("respawn_window", default=1.0): cv.positive_float,
        vol.Optional("respawn_pause", default=60.0): cv.non_negative_float,
        vol.Optional("agent_timeout", default=60.0): cv.positive_float,
        vol.Optional("test_timeout", default=120.0): cv.positive_float,
        vol.Optional("stop_timeout", default=60.0): cv.positive_float,
        vol.Optional("wait_failure", default="fail"): cv.one_of("fail", "continue"),
        vol.Optional("cgroup", default="auto"): cv.one_of("auto", "off"),
        vol.Optional("agent_host", default="auto"): cv.one_of("auto", "off"),
    },
    vol.Optional("fencing", default={}): {
        vol.Optional("action", default="reboot"): cv.one_of("off", "reboot"),
        vol.Optional("on_fence_failure", default="wait"): cv.one_of("wait", "takeover"),
        vol.Optional("unfenced_grace", default=0.0): cv.non_negative_float,
        vol.Optional("retry_max", default=30.0): cv.positive_float,
        vol.Optional("devices", default=[]): [dict],
    },
    vol.Optional("agents", default={}): {cv.identifier: dict},
    # Pacemaker-compatible alert agents run on node, fencing and resource events (omha_core/alerts.py)
    vol.Optional("alerts", default=[]): [ALERT_SCHEMA],
}


@dataclass(frozen=True)
class Config:
    """A validated ``omha.toml``. ``data`` holds every section with defaults filled in."""

    data: Mapping[str, Any]
    path: str = "<defaults>"

    @property
    def node(self) -> str:
        """This node's name (``node``, else the host name)."""
        import socket  # here: most commands never need it (CLI start-up, issue 19)

        return str(self.data.get("node") or socket.gethostname().split(".")[0])

    @property
    def cluster_name(self) -> str:
        return str(self.data["cluster"]["name"])

    def section(self, name: str) -> Mapping[str, Any]:
        """A top-level section, empty when absent."""
        value = self.data.get(name)
        return value if isinstance(value, Mapping) else {}

    @property
    def timing(self) -> Mapping[str, Any]:
        return self.section("timing")

    @property
    def state_dir(self) -> str:
        """Local state (control socket, quorum memory); per node, so several nodes share one machine."""
        return str(self.section("daemon").get("state_dir") or f"/var/lib/omha/{self.node}")

    @property
    def socket_path(self) -> str:
        return str(self.section("daemon").get("socket") or os.path.join(self.state_dir, "omha.sock"))

    @property
    def log_path(self) -> str | None:
        value = self.section("daemon").get("log")
        return str(value) if value else None

    def agent_options(self, name: str) -> Mapping[str, Any]:
        """``[agents.<name>]``: options for one resource agent."""
        agents = self.section("agents")
        value = agents.get(name, {})
        return value if isinstance(value, Mapping) else {}


def config_path(explicit: str | None = None) -> str:
    """The config path: explicit, else ``$OMHA_CONFIG``, else the default."""
    return explicit or os.environ.get("OMHA_CONFIG") or DEFAULT_PATH


def load_config(path: str | None = None, pm: PluginHost | None = None) -> Config:
    """Read and validate ``omha.toml``; raise :class:`ConfigError` listing every problem."""
    path = config_path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give -c/--config or set OMHA_CONFIG)") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate_config(raw, path, pm)


def validate_config(raw: Mapping[str, Any], path: str = "omha.toml", pm: PluginHost | None = None) -> Config:
    """Validate an already-parsed configuration mapping; raise :class:`ConfigError` listing every problem."""
    pm = pm or _plugin_manager()
    schema = dict(CORE_SCHEMA)
    for name, (section, _plugin) in registry_sections(pm).items():
        schema[vol.Optional(name, default={})] = section
    problems: list[str] = []
    try:
        data: dict[str, Any] = vol.Schema(schema)(dict(raw))
    except vol.Invalid as exc:
        # keep going on the raw values, so one run reports the devices' and agents' problems too
        problems += cv.humanize(exc, path)
        data = {}
    devices = _section(data, raw, "fencing").get("devices")
    devices = [d for d in devices if isinstance(d, Mapping)] if isinstance(devices, list) else []
    checked = _check_devices(devices, path, pm, problems)
    _check_backends(_section(data, raw, "cluster"), path, pm, problems)
    _check_agent_sections(_section(data, raw, "agents"), path, pm, problems)
    if problems:
        from omha_core.plugins import broken_hint

        hint = broken_hint(pm)  # a plugin that raised in omha_config_schema: its section is unknown, say why
        if hint and any("unknown" in p or "extra keys" in p for p in problems):
            problems.append(f"{path}: {hint[2:]}")
        raise ConfigError("\n".join(problems))
    data["fencing"]["devices"] = checked
    return Config(data, path)


def _plugin_manager() -> pluggy.PluginManager:
    from omha_core.plugins import get_plugin_manager

    return get_plugin_manager()


def _section(data: Mapping[str, Any], raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A section, validated when the whole file was, else as written (to check what can still be checked)."""
    value = data[name] if data else raw.get(name)
    return value if isinstance(value, Mapping) else {}


def _check_devices(
    devices: list[Mapping[str, Any]], path: str, pm: PluginHost, problems: list[str]
) -> list[dict[str, Any]]:
    """Validate each ``[[fencing.devices]]`` against its kind's schema; return the validated devices."""
    if not devices:  # no device kind to look up: loading every device plugin's classes would only cost time
        return []
    from omha_core import hooks
    from omha_core.fence_devices import device_schema
    from omha_core.plugins import broken_hint

    kinds = hooks.fence_devices(pm)
    checked = []
    names: set[str] = set()
    for i, dev in enumerate(devices):
        label = dev.get("name", f"#{i + 1}")
        kind = dev.get("kind")
        if kind not in kinds:
            known = ", ".join(sorted(kinds)) or "none"
            problems.append(
                f"{path}: [fencing.devices] {label}: kind {kind!r} is not installed (known: {known}){broken_hint(pm)}"
            )
            continue
        try:
            checked.append(device_schema(kinds[kind][0].schema)(dict(dev)))
        except vol.Invalid as exc:
            problems += [
                m.replace(f"{path}: ", f"{path}: [fencing.devices] {label}: ", 1) for m in cv.humanize(exc, path)
            ]
            continue
        if label in names:
            problems.append(f"{path}: [fencing.devices] {label}: device name used twice")
        names.add(label)
    return checked


def _check_backends(cluster: Mapping[str, Any], path: str, pm: PluginHost, problems: list[str]) -> None:
    """``[cluster] store`` and ``membership`` name installed backends."""
    from omha_core import hooks
    from omha_core.plugins import broken_hint

    for key, backends in (("store", hooks.store_backends), ("membership", hooks.membership_backends)):
        name = cluster.get(key, "sharedfs")
        known = backends(pm)
        if name not in known:
            installed = ", ".join(sorted(known)) or "none"
            problems.append(
                f"{path}: [cluster] {key}: {name!r} is not installed (installed: {installed}){broken_hint(pm)}"
            )


def deployment_problems(config: Config) -> list[str]:
    """What a daemon would refuse at start-up although the file is valid in itself (``omha check`` reports it):
    a sharedfs cluster without ``[sharedfs] path``."""
    cluster = config.section("cluster")
    if "sharedfs" in (cluster["store"], cluster["membership"]) and not config.section("sharedfs").get("path"):
        return [f"{config.path}: [sharedfs] path: required when store or membership is 'sharedfs' (the shared dir)"]
    return []


def _check_agent_sections(agents: Mapping[str, Any], path: str, pm: PluginHost, problems: list[str]) -> None:
    """Each ``[agents.<name>]`` names an installed agent and only the options that agent declares."""
    if not agents:  # nothing to check: do not load every agent plugin's classes (omha status start-up, issue 19)
        return
    from omha_core import hooks
    from omha_core.plugins import broken_hint

    installed = hooks.resource_agents(pm)
    for name, options in agents.items():
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none"
            problems.append(
                f"{path}: [agents.{name}]: no resource agent @{name} is installed (installed: {known}){broken_hint(pm)}"
            )
            continue
        accepted = getattr(installed[name][0], "option_names", None)
        unknown = sorted(set(options) - set(accepted)) if accepted is not None and isinstance(options, Mapping) else []
        if unknown:
            problems.append(
                f"{path}: [agents.{name}] {unknown[0]}: unknown option (known: {', '.join(sorted(accepted or ()))})"
            )


def registry_sections(pm: PluginHost) -> dict[str, tuple[Any, str]]:
    """Plugin config sections: section name -> (schema, plugin name)."""
    from omha_core import hooks

    return hooks.config_schemas(pm)
