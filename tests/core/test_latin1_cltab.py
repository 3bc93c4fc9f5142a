"""A cltab that is not UTF-8, as a file carried over from the original may be (the Perl of 2003 read bytes: a
Latin-1 comment was nothing special). omha requires UTF-8 and ``omha check`` names the line and byte at fault;
the daemons logged "UnicodeEncodeError: ... surrogates not allowed" instead (the shared-directory store hashed
the text it had read with ``surrogateescape`` as UTF-8) and ``omha load`` died with a traceback. Both now give
``omha check``'s error, and a daemon keeps running the last good cltab."""

from __future__ import annotations

from pathlib import Path

from omha_core.localcluster import LocalCluster, fence_device

GOOD = "web:srv:run:respawn:exec sleep 100\n"
LATIN1 = "web:srv:run:respawn:exec sleep 100\n# r\xe9seau du caf\xe9\n".encode("latin-1")
ERROR = "cltab:2: not valid UTF-8 text (byte 38)"


def test_a_latin1_cltab_is_refused_by_name_and_line_and_the_last_good_one_runs_on(tmp_path: Path) -> None:
    c = LocalCluster(tmp_path, nodes=2, cltab=GOOD, hactl="web run\n", devices=[fence_device(tmp_path, ["n1", "n2"])])
    c.start()
    try:
        holder = c.wait_running("web")
        (c.shared / "cltab").write_bytes(LATIN1)
        for node in c.names:
            c.wait_for(f"{node} refuses the cltab", lambda n=node: ERROR in c.log(n))
            assert "UnicodeEncodeError" not in c.log(node) and "cycle failed" not in c.log(node)
            assert (c.shared / "nodes" / node / "cltab").read_text() == GOOD
        assert c.running("web") == [holder]
        (tmp_path / "latin1").write_bytes(LATIN1)
        out = c.omha("n1", "load", "--cltab", str(tmp_path / "latin1"), check=False)
        assert out.returncode == 1 and f"{tmp_path / 'latin1'}:2: not valid UTF-8 text (byte 38)" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        c.stop()
