"""The campaign's network to etcd (``--netns``, etcd only): every node in its own network namespace, reaching the
three etcd members over its own veth link, so that the ``netns_cut`` fault can cut one node off from etcd.

The namespaces and links are :class:`tests.cts.netns.NodeNets` (one /30 of 198.51.100.0/24 per node); every
etcd member also listens on the host end of every node's link, and each node's ``[etcd] endpoints`` are the three
members as that node reaches them. A cut sets the host end of the node's link down: its packets are dropped, its
etcd requests time out as behind a pulled cable; the heal sets it up again. Fencing is unaffected (the campaign's
fence device acts on the node's processes, not over the network), as a power switch on its own network is.
"""

from __future__ import annotations

from omha_testing.etcd import EtcdCluster

from tests.cts.netns import NodeNets


class NetEtcd(EtcdCluster):
    """``size`` etcd members that also listen on the host end of every node's link."""

    def __init__(self, nets: NodeNets, size: int = 3) -> None:
        super().__init__(size)
        self.nets = nets

    def _plan(self) -> None:
        super()._plan()
        for m in self.members:
            urls = [m.client_url, *(f"http://{n.host_ip}:{m.client_port}" for n in self.nets.nets.values())]
            m.extra_args = [*m.extra_args, "--listen-client-urls", ",".join(urls)]

    def urls_for(self, node: str) -> list[str]:
        """The members' endpoints as ``node`` reaches them, over its own link."""
        host = self.nets.nets[node].host_ip
        return [f"http://{host}:{m.client_port}" for m in self.members]
