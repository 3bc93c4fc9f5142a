"""A fake openMosix cluster tree for tests: the kernel's node table and the MFS directories, in a temp dir.

::

    <root>/proc/hpc/nodes/<n>/status      "3" (up: bit value 2 set) or "1" (down), or any garbage
    <root>/mfs/<n>/var/mosix-ha/          node n's omha directory (clstat, cltab, claims/, ...)

Every node is a directory here, so several omha stores or daemons on one machine each play one node by
setting ``node = "<n>"`` (or ``whois = "echo This is MOSIX #<n>"``) and sharing ``hpcbase``/``mfsbase``.
:meth:`FakeMosix.disconnect` makes a node look like a lost openMosix node: down in the kernel table, and its
MFS directory unreachable (moved aside), as on a real cluster; :meth:`FakeMosix.reconnect` brings it back.

Reusable beyond this directory: :meth:`FakeMosix.toml` writes a complete omha.toml for one node, and
:class:`MosixCluster` runs ``omha daemon`` processes on the tree (omha_core.localcluster.LocalCluster, with the
openmosix backends, the documents on the first node's directory and reports read through the openmosix store).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omha_core.config import Config, validate_config
from omha_core.localcluster import LocalCluster, node_processes
from omha_core.plugins import OmhaPluginManager, get_plugin_manager
from omha_core.report import cluster_report

if TYPE_CHECKING:
    from omha_membership_openmosix.store import OpenMosixStore

VARPATH = "var/mosix-ha"
UP, DOWN = 3, 1


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def plugin_manager() -> OmhaPluginManager:
    """Builtins plus the openmosix plugin only (other plugins' state cannot affect these tests)."""
    import omha_membership_openmosix

    with _env("OMHA_AUTOLOAD_PLUGINS", "0"):
        return get_plugin_manager(extra=[omha_membership_openmosix])


def whois_command(node: int | str) -> str:
    """A whois command that answers like ``mosctl whois`` on node ``node``."""
    return f"echo This is MOSIX #{node}"


class FakeMosix:
    """A fake openMosix tree under ``root`` with nodes ``nodes``, all up."""

    def __init__(self, root: Path, nodes: Iterable[int | str] = (1, 2, 3), varpath: str = VARPATH) -> None:
        self.root = Path(root)
        self.varpath = varpath
        self.hpcbase = self.root / "proc" / "hpc"
        self.mfsbase = self.root / "mfs"
        (self.hpcbase / "nodes").mkdir(parents=True, exist_ok=True)
        self.mfsbase.mkdir(parents=True, exist_ok=True)
        for n in nodes:
            self.add_node(n)

    # -- the kernel's table -----------------------------------------------------------------------------
    def status_path(self, node: int | str) -> Path:
        return self.hpcbase / "nodes" / str(node) / "status"

    def add_node(self, node: int | str, status: int | str = UP, with_dir: bool = True) -> None:
        """Add a node to the kernel table (and give it an MFS directory)."""
        self.status_path(node).parent.mkdir(parents=True, exist_ok=True)
        self.set_status(node, status)
        if with_dir:
            self.node_dir(node).mkdir(parents=True, exist_ok=True)

    def set_status(self, node: int | str, status: int | str) -> None:
        """Write the node's status file: an int as openMosix does, or any string verbatim (garbage)."""
        text = f"{status}\n" if isinstance(status, int) else status
        self.status_path(node).write_text(text)

    def up(self, node: int | str) -> None:
        self.set_status(node, UP)

    def down(self, node: int | str) -> None:
        self.set_status(node, DOWN)

    # -- MFS --------------------------------------------------------------------------------------------
    def node_dir(self, node: int | str) -> Path:
        """``<mfsbase>/<node>/<varpath>``."""
        return self.mfsbase / str(node) / self.varpath

    def _aside(self, node: int | str) -> Path:
        return self.root / f"unreachable-{node}"

    def disconnect(self, node: int | str) -> None:
        """The node leaves the cluster: down in the kernel table and its MFS directory unreachable."""
        self.down(node)
        os.rename(self.mfsbase / str(node), self._aside(node))

    def reconnect(self, node: int | str) -> None:
        """The node comes back, with whatever its directory held when it left."""
        os.rename(self._aside(node), self.mfsbase / str(node))
        self.up(node)

    def put_copy(
        self,
        node: int | str,
        name: str,
        text: str,
        version: tuple[int, int | str] | None = None,
        mtime_ns: int | None = None,
    ) -> Path:
        """Place a copy of ``cltab``/``hactl`` on ``node``: versioned ``(counter, author)``, or bare (by hand)."""
        from omha_membership_openmosix.versions import VERSION_SUFFIX, digest

        path = self.node_dir(node) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if version is not None:
            meta = {"counter": version[0], "author": str(version[1]), "sha256": digest(text.encode())}
            Path(str(path) + VERSION_SUFFIX).write_text(json.dumps(meta))
        if mtime_ns is not None:
            os.utime(path, ns=(mtime_ns, mtime_ns))
        return path

    def read_json(self, node: int | str, name: str) -> Any:
        return json.loads((self.node_dir(node) / name).read_text())

    # -- configuration ----------------------------------------------------------------------------------
    def section(self, **overrides: Any) -> dict[str, Any]:
        """``[openmosix]`` pointing at this tree."""
        return {"hpcbase": str(self.hpcbase), "mfsbase": str(self.mfsbase), "varpath": self.varpath, **overrides}

    def raw_config(self, node: int | str | None, **overrides: Any) -> dict[str, Any]:
        """An omha.toml mapping for ``node`` using both openmosix backends (``node`` None: whois decides)."""
        raw: dict[str, Any] = {
            "cluster": {"membership": "openmosix", "store": "openmosix"},
            "openmosix": self.section(**overrides),
        }
        if node is not None:
            raw["node"] = str(node)
        return raw

    def config(self, node: int | str | None, pm: OmhaPluginManager | None = None, **overrides: Any) -> Config:
        """A validated :class:`Config` for ``node``."""
        return validate_config(self.raw_config(node, **overrides), f"omha-{node}.toml", pm or plugin_manager())

    def toml(self, node: int | str, extra: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """A complete omha.toml text for ``node`` (sections in ``extra`` are added or merged)."""
        raw = self.raw_config(node)
        for name, values in (extra or {}).items():
            raw[name] = {**raw.get(name, {}), **values}
        lines = [f'node = "{node}"']
        for name, values in raw.items():
            if isinstance(values, Mapping):
                lines.append(f"\n[{name}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        return "\n".join(lines) + "\n"

    def write_toml(self, path: Path, node: int | str, extra: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
        path.write_text(self.toml(node, extra))
        return path


class MosixCluster(LocalCluster):
    """``omha daemon`` processes, one per node of ``mosix``, using the openmosix backends.

    ``cltab``/``hactl`` are placed (unversioned, as an operator would) in the first node's directory.
    :meth:`leave` is how a node fails the OpenMosix::HA way: its status bit is cleared and its daemon killed;
    :meth:`crash` does the same in the order of a real crash (everything on the node dies, then the kernel notices);
    :meth:`kill_daemon` kills only the daemon (and what it ran), leaving the node up in the kernel.
    """

    def __init__(
        self,
        tmp: Path,
        mosix: FakeMosix,
        nodes: Iterable[int | str] = (1, 2, 3),
        cltab: str = "",
        hactl: str = "",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.mosix = mosix
        names = [str(n) for n in nodes]
        sections: dict[str, dict[str, Any]] = {
            "cluster": {"membership": "openmosix", "store": "openmosix"},
            "openmosix": mosix.section(),
        }
        for name, values in (config or {}).items():
            sections.setdefault(name, {}).update(values)
        for name in names:
            if not mosix.status_path(name).exists():
                mosix.add_node(name)
        if cltab:
            mosix.put_copy(names[0], "cltab", cltab)
        if hactl:
            mosix.put_copy(names[0], "hactl", hactl)
        super().__init__(tmp, nodes=names, config=sections, **kwargs)

    def _store(self) -> OpenMosixStore:
        from omha_membership_openmosix.store import OpenMosixStore

        store = OpenMosixStore(self.mosix.config(self.names[0]))
        store.open()
        return store

    def report(self) -> dict[str, Any]:
        return cluster_report(self._store(), str(self.sections["cluster"]["name"]))

    def fence_record(self, node: str) -> dict[str, Any]:
        return dict(self._store().fence_records().get(node, {}))

    def leave(self, node: str) -> None:
        """``node`` drops out of openMosix (status bit cleared) and its daemon dies."""
        self.mosix.down(node)
        self.kill(node)

    def crash(self, node: str, timeout: float = 10.0) -> None:
        """``node`` crashes: its daemon is SIGKILLed, everything it ran dies with it, then openMosix notices.

        The status bit is cleared only once no process the node started is left (its guard kills them when the
        daemon dies; an AssertionError names them if they outlive ``timeout``). That is the order of a real
        crash, so a takeover without a fence device cannot overlap with the dead node's processes; a node whose
        kernel entry goes down while its processes still run is what fencing is for.
        """
        self.kill_daemon(node, timeout)
        self.mosix.down(node)

    def kill_daemon(self, node: str, timeout: float = 10.0) -> None:
        """``node``'s daemon is SIGKILLed and everything it ran dies with it, but the node stays up in openMosix:
        its kernel status bit is left set, as when only OpenMosix::HA crashed (the original still counted it).

        Returns once no process the node started is left (AssertionError naming them after ``timeout``).
        """
        self.kill(node)
        cluster = str(self.sections["cluster"]["name"])
        deadline = time.monotonic() + timeout
        while left := node_processes(cluster, node):
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of node {node} outlived its daemon by {timeout:g} s: {left}")
            time.sleep(0.05)
