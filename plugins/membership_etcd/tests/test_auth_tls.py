"""Authentication and TLS against a real etcd: logins, expired tokens, certificates, and secrets kept secret."""

from __future__ import annotations

import logging
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_support import Opened, make_config
from omha_membership_etcd.store import EtcdStore
from omha_testing import require_commands
from omha_testing.etcd import EtcdCluster, etcd_cluster

from omha_core.errors import StoreError
from omha_core.plugins import OmhaPluginManager

PASSWORD = "Tr0ub4dor-omha-etcd"  # the omha user's password: must never show in a message or a log
ROOT_PASSWORD = "r00t-omha-etcd"
TOKEN_TTL = 1  # seconds an idle simple token lives on the test etcd


@pytest.fixture(scope="module")
def etcd_auth() -> Iterator[EtcdCluster]:
    """An etcd with authentication on; user ``omha`` may read and write ``/omha/`` only."""
    with etcd_cluster(1, extra_args=["--auth-token-ttl", str(TOKEN_TTL)]) as etcd:
        etcd.etcdctl("user", "add", "root", "--new-user-password", ROOT_PASSWORD)
        etcd.etcdctl("role", "add", "root")
        etcd.etcdctl("user", "grant-role", "root", "root")
        etcd.etcdctl("user", "add", "omha", "--new-user-password", PASSWORD)
        etcd.etcdctl("role", "add", "omha")
        etcd.etcdctl("role", "grant-permission", "omha", "--prefix=true", "readwrite", "/omha/")
        etcd.etcdctl("user", "grant-role", "omha", "omha")
        etcd.etcdctl("auth", "enable")
        yield etcd


@pytest.fixture
def password_file(tmp_path: Path) -> str:
    path = tmp_path / "etcd.password"
    path.write_text(PASSWORD + "\n")
    return str(path)


def assert_secret_kept(text: str) -> None:
    assert PASSWORD not in text and ROOT_PASSWORD not in text


def test_login_with_a_password_file(
    etcd_auth: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened, password_file: str
) -> None:
    def config(node: str):  # type: ignore[no-untyped-def]
        return make_config(
            plugin_manager, etcd_auth.endpoints, cluster_name, node, username="omha", password_file=password_file
        )

    s1, m1 = opened.member(config("n1"))
    s2, m2 = opened.member(config("n2"))
    assert_secret_kept(repr(s1.options))
    s1.publish("n1", {"node": "n1", "incarnation": "i", "seq": 1})
    assert s2.statuses()["n1"]["seq"] == 1
    assert s1.claim("web", "n1", "i") and not s2.claim("web", "n2", "i")
    v = s1.put_document("hactl", "web 3\n", None)
    s2.put_document("hactl", "web 4\n", v)
    assert m1.up_nodes() == {"n1", "n2"}
    m1.heartbeat()
    assert m1.is_member() and m2.is_member()
    s1.claims()
    s2.fence_lock("n3", "i", "n2")  # a change after s1's read: its authenticated watch must see it
    started = time.monotonic()
    s1.wait_for_change(20.0)
    assert time.monotonic() - started < 20.0


def test_login_with_a_password_from_the_environment(
    etcd_auth: EtcdCluster,
    plugin_manager: OmhaPluginManager,
    cluster_name: str,
    opened: Opened,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMHA_TEST_ETCD_PASSWORD", PASSWORD)
    config = make_config(
        plugin_manager, etcd_auth.endpoints, cluster_name, username="omha", password_env="OMHA_TEST_ETCD_PASSWORD"
    )
    store = opened.store(config)
    assert store.claim("web", "n1", "i")


def test_an_expired_token_is_renewed(
    etcd_auth: EtcdCluster,
    plugin_manager: OmhaPluginManager,
    cluster_name: str,
    opened: Opened,
    password_file: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login = {"username": "omha", "password_file": password_file}
    store = opened.store(make_config(plugin_manager, etcd_auth.endpoints, cluster_name, "n1", **login))
    other = opened.store(make_config(plugin_manager, etcd_auth.endpoints, cluster_name, "n2", **login))
    store.publish("n1", {"seq": 1})
    store.claims()
    first = dict(store.client._tokens)
    time.sleep(TOKEN_TTL + 1.5)  # idle longer than the token lives (etcd checks expiry every second)
    other.claim("web", "n2", "i")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        store.wait_for_change(20.0)  # the watch is refused with the old token: log in again, then watch
    assert time.monotonic() - started < 20.0
    assert not [r for r in caplog.records if "watch failed" in r.getMessage()]
    assert store.client._tokens != first
    store.publish("n1", {"seq": 2})
    assert store.statuses()["n1"]["seq"] == 2


def test_a_wrong_password_is_a_clear_error_that_does_not_show_it(
    etcd_auth: EtcdCluster,
    plugin_manager: OmhaPluginManager,
    cluster_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("x" + PASSWORD)
    config = make_config(plugin_manager, etcd_auth.endpoints, cluster_name, username="omha", password_file=str(wrong))
    store = EtcdStore(config)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as info:
            store.open()
    finally:
        store.close()
    message = str(info.value)
    assert "authentication as user 'omha' failed" in message and "password_file" in message
    assert_secret_kept(message)
    assert "x" + PASSWORD not in message
    for record in caplog.records:
        assert_secret_kept(record.getMessage())
        assert "x" + PASSWORD not in record.getMessage()


def test_no_login_where_etcd_requires_one_says_so(
    etcd_auth: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str
) -> None:
    store = EtcdStore(make_config(plugin_manager, etcd_auth.endpoints, cluster_name))
    try:
        with pytest.raises(StoreError, match="set \\[etcd\\] username and password_file"):
            store.open()
    finally:
        store.close()


def test_a_prefix_outside_the_users_permissions_is_refused_clearly(
    etcd_auth: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, password_file: str
) -> None:
    config = make_config(
        plugin_manager, etcd_auth.endpoints, cluster_name, username="omha", password_file=password_file, prefix="/x"
    )
    store = EtcdStore(config)
    try:
        with pytest.raises(StoreError) as info:
            store.open()
    finally:
        store.close()
    assert "permission denied" in str(info.value) and "/x/" in str(info.value)
    assert_secret_kept(str(info.value))


# -- TLS ----------------------------------------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    require_commands("openssl")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=omha test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)  # fmt: skip
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        (d / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=omha-{name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    return d


@pytest.fixture(scope="module")
def etcd_tls(pki: Path) -> Iterator[EtcdCluster]:
    """An etcd whose client port speaks TLS and wants a client certificate signed by the test CA."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    args = [
        "--cert-file", str(pki / "server.pem"),
        "--key-file", str(pki / "server.key"),
        "--trusted-ca-file", str(pki / "ca.pem"),
        "--client-cert-auth",
    ]  # fmt: skip
    with etcd_cluster(1, extra_args=args, scheme="https", context=context) as etcd:
        yield etcd


def test_tls_with_a_client_certificate(
    etcd_tls: EtcdCluster, pki: Path, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    tls = {"ca_file": str(pki / "ca.pem"), "cert_file": str(pki / "client.pem"), "key_file": str(pki / "client.key")}
    s1, m1 = opened.member(make_config(plugin_manager, etcd_tls.endpoints, cluster_name, "n1", **tls))
    s2, _ = opened.member(make_config(plugin_manager, etcd_tls.endpoints, cluster_name, "n2", **tls))
    assert etcd_tls.endpoints[0].startswith("https://")
    assert s1.claim("web", "n1", "i") and not s2.claim("web", "n2", "i")
    assert m1.up_nodes() == {"n1", "n2"}
    s1.claims()
    s2.put_document("cltab", "web:a:3:respawn:sleep 100\n", None)
    started = time.monotonic()
    s1.wait_for_change(20.0)  # the watch runs over TLS too
    assert time.monotonic() - started < 20.0


def test_an_untrusted_server_certificate_is_named(
    etcd_tls: EtcdCluster, pki: Path, plugin_manager: OmhaPluginManager, cluster_name: str
) -> None:
    config = make_config(
        plugin_manager,
        etcd_tls.endpoints,
        cluster_name,
        cert_file=str(pki / "client.pem"),
        key_file=str(pki / "client.key"),
    )
    store = EtcdStore(config)
    try:
        with pytest.raises(StoreError, match=r"certificate not trusted.*ca_file"):
            store.open()
    finally:
        store.close()


def test_a_missing_client_certificate_is_refused(
    etcd_tls: EtcdCluster, pki: Path, plugin_manager: OmhaPluginManager, cluster_name: str
) -> None:
    store = EtcdStore(make_config(plugin_manager, etcd_tls.endpoints, cluster_name, ca_file=str(pki / "ca.pem")))
    try:
        with pytest.raises(StoreError) as info:
            store.open()
    finally:
        store.close()
    assert etcd_tls.endpoints[0] in str(info.value) and "check [etcd] cert_file and key_file" in str(info.value)


def test_an_unreadable_ca_file_is_named(
    etcd_tls: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.pem")
    store = EtcdStore(make_config(plugin_manager, etcd_tls.endpoints, cluster_name, ca_file=missing))
    try:
        with pytest.raises(StoreError, match=f"\\[etcd\\] ca_file {missing}: cannot load"):
            store.open()
    finally:
        store.close()
