"""A store backend plugin that raises (not a StoreError: a bug, or a library's own exception) is a store
failure, never a crash: the daemon starts, says what failed, stays isolated while it fails, and recovers."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

pytestmark = pytest.mark.slow

FLAKY = """
import os
from omha_core import hookimpl
from omha_core.builtin.sharedfs import SharedDirStore

class Flaky(SharedDirStore):
    def _broken(self):
        if os.path.exists(os.environ["STORE_BREAK"]):
            raise RuntimeError("driver bug")

    def documents(self, name):
        self._broken()
        return super().documents(name)

    def statuses(self):
        self._broken()
        return super().statuses()

@hookimpl
def omha_store_backends():
    return {"flaky": Flaky}
"""


def test_a_raising_store_backend_is_a_store_failure_not_a_crash(tmp_path: Path) -> None:
    require_commands("flock")
    site = tmp_path / "site"
    site.mkdir()
    (site / "omhatest_flaky.py").write_text(textwrap.dedent(FLAKY))
    info = site / "omhatest_flaky-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: omhatest-flaky\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[omha]\nflaky = omhatest_flaky\n")
    broken = tmp_path / "break"
    broken.write_text("")
    c = Cluster(
        tmp_path,
        1,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        config={"cluster": {"store": "flaky"}},
        env={
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "STORE_BREAK": str(broken),
        },
    )
    try:
        c.start()
        c.wait_for("the failure logged", lambda: "store: backend failed: RuntimeError: driver bug" in c.log("n1"))
        assert c.procs["n1"].poll() is None, "the daemon crashed"
        assert c.running("web") == []
        broken.unlink()
        c.wait_running("web")
    finally:
        c.close()
