"""Several nodes in one URL (deploy/cluster, docs/operations.md "Running on a cluster"): the RabbitMQ URL lists a
cluster's nodes, the PostgreSQL URL a primary and its standby; the URLs written for each service keep every node."""

from services.admin.broker import user_url
from services.admin.database import database_url_for
from shared.amqp import nodes, with_user
from shared.topology import TOPOLOGY

CLUSTER = "amqp://admin:s%40cret@10.0.0.1:5681,10.0.0.2,10.0.0.3:5683/paraaf?heartbeat=30"


def test_a_url_with_several_nodes_is_one_url_per_node_in_its_order() -> None:
    assert nodes(CLUSTER) == [
        "amqp://admin:s%40cret@10.0.0.1:5681/paraaf?heartbeat=30",
        "amqp://admin:s%40cret@10.0.0.2/paraaf?heartbeat=30",
        "amqp://admin:s%40cret@10.0.0.3:5683/paraaf?heartbeat=30",
    ]


def test_a_url_with_one_node_is_itself() -> None:
    assert nodes("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


def test_a_services_broker_url_keeps_every_node_and_the_vhost() -> None:
    url = user_url(CLUSTER, "paraaf.intake", "p@ss/word")
    assert url == "amqp://paraaf.intake:p%40ss%2Fword@10.0.0.1:5681,10.0.0.2,10.0.0.3:5683/paraaf?heartbeat=30"
    assert with_user(CLUSTER, "paraaf.intake", "p@ss/word") == url


def test_a_services_database_url_keeps_the_primary_the_standby_and_the_session_attributes() -> None:
    admin = "postgresql://postgres@127.0.0.1:5442,127.0.0.1:5443/paraaf?target_session_attrs=read-write"
    assert database_url_for(admin, "paraaf_router", "x y") == (
        "postgresql://paraaf_router:x%20y@127.0.0.1:5442,127.0.0.1:5443/paraaf?target_session_attrs=read-write"
    )


def test_every_consuming_queue_asks_for_three_quorum_members() -> None:
    for spec in TOPOLOGY.queues:
        arguments = spec.arguments(5)
        assert arguments["x-queue-type"] == "quorum" and arguments["x-quorum-initial-group-size"] == 3, spec.name
