"""The daemon on a two-node Ray cluster: it joins the cluster named by RAY_ADDRESS, and an account that asks
for a custom resource (one node per egress IP, SEBI's static-IP rule) runs on the node that has it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray
from ray.cluster_utils import Cluster

from tests.integration.daemon import ROOT, Daemon, wait_for
from tests.integration.test_orders import order_in, place
from trademaster.v1 import orders_pb2

EGRESS = "egress_ip_a"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, str]]:
    """A head node and a worker node that alone has the egress resource; yields the cluster and that node's id."""
    built = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = built.add_node(num_cpus=1, resources={EGRESS: 10})
        yield built, worker.node_id
    finally:
        built.shutdown()


@pytest.fixture(scope="module")
def daemon(cluster: tuple[Cluster, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("cluster") / "data", ROOT / "test-artifacts" / "daemon-cluster.log")
    d.config.write_text(
        f"""{d.tables()}
[paper]
volatility = 0.0

[[accounts]]
id = "home"
default = true

[[accounts]]
id = "egress-a"
ray_resources = {{ {EGRESS} = 1 }}
"""
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_ADDRESS", cluster[0].address)
        d.start()
    yield d
    d.stop()


def _node_of(address: str, account: str) -> str:
    ray.init(address=address, namespace="trademaster", log_to_driver=False)
    try:
        return ray.get(ray.get_actor(f"account:{account}").node_id.remote(), timeout=30)
    finally:
        ray.shutdown()


def test_an_account_runs_on_the_node_with_its_resource_and_orders_flow(
    cluster: tuple[Cluster, str], daemon: Daemon
) -> None:
    built, egress_node = cluster
    # Without its resource request the actor would land on the head: Ray packs actors that need nothing onto
    # the driver's node first.
    assert _node_of(built.address, "egress-a") == egress_node
    with daemon.client() as client:
        for account in ("egress-a", "home"):
            sent = place(client, account=account)
            wait_for(lambda s=sent: order_in(client, s.order.order_id, orders_pb2.ORDER_STATUS_FILLED), timeout=30)
