"""The local cluster of deploy/cluster (three RabbitMQ nodes, a PostgreSQL primary and its standby), driven from a
test as an operator's bad day drives it: a node's application stopped and started, a node killed with SIGKILL and
started again, the primary stopped and the standby promoted. Everything goes through the deploy/cluster commands
and rabbitmqctl / pg_ctlcluster, as an operator would."""

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.support.session import SESSION_PREFIX

__all__ = ["DEPLOY", "LocalCluster", "QueueState"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
NODES = ("paraaf-a", "paraaf-b", "paraaf-c")
AMQP_PORTS = {"paraaf-a": 5681, "paraaf-b": 5682, "paraaf-c": 5683}
MANAGEMENT_PORT = 15681
PG_VERSION = os.environ.get("PARAAF_CLUSTER_PG_VERSION") or max(os.listdir("/usr/lib/postgresql"), key=int, default="15")
PG_PRIMARY, PG_STANDBY = ("paraaf-a", 5442), ("paraaf-b", 5443)


# rabbitmqctl's own Erlang node takes a port of a range every rabbitmqctl on this machine shares (35672-35682 beside
# the default broker): the cluster's calls use a range of their own (as deploy/cluster/common.sh does), so CLI calls
# hanging elsewhere cannot make ours fail with "nodistribution".
CTL_ENV = {**os.environ, "RABBITMQ_CTL_DIST_PORT_MIN": "35781", "RABBITMQ_CTL_DIST_PORT_MAX": "35799"}


def _run(*args: str, timeout: float = 180) -> str:
    # GNU timeout ends its process group on expiry. rabbitmqctl runs as su -> sh -> erl, and su starts sh in a group of
    # its own, so a CLI node that hangs may outlive the timeout, holding its port: the range of our own above keeps
    # such leftovers (ours or anyone's) from failing the next calls.
    result = subprocess.run(["timeout", "-k", "5", str(int(timeout)), *args], capture_output=True, text=True, env=CTL_ENV)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def node_name(node: str) -> str:
    return f"{node}@localhost"


@dataclass(frozen=True)
class QueueState:
    name: str
    type: str
    members: tuple[str, ...]
    online: tuple[str, ...]


class LocalCluster:
    """Started by deploy/cluster/start.sh (which first removes what an aborted run left), removed by stop.sh."""

    def __init__(self) -> None:
        self.directory = Path(os.environ.get("PARAAF_CLUSTER_DIR", "/var/lib/paraaf-cluster"))
        self.down: set[str] = set()  # nodes stopped or killed by the test, not started again yet
        self.counts: Counter[str] = Counter()

    # ---- the whole cluster

    def start(self) -> None:
        _run(str(DEPLOY / "start.sh"), timeout=600)

    def stop(self, keep_logs_in: Path | None = None) -> None:
        """Remove the cluster; first copy its PostgreSQL servers' logs (removed with them) into ``keep_logs_in``, so
        a failover that went wrong can be read afterwards."""
        if keep_logs_in is not None:
            keep_logs_in.mkdir(parents=True, exist_ok=True)
            for name, _ in (PG_PRIMARY, PG_STANDBY):
                log = Path(f"/var/log/postgresql/postgresql-{PG_VERSION}-{name}.log")
                with contextlib.suppress(OSError):
                    shutil.copyfile(log, keep_logs_in / log.name)
        _run(str(DEPLOY / "stop.sh"), timeout=300)

    @property
    def amqp_url(self) -> str:
        return "amqp://guest:guest@" + ",".join(f"127.0.0.1:{AMQP_PORTS[n]}" for n in NODES) + "/"

    def database_url(self, database: str) -> str:
        hosts = f"127.0.0.1:{PG_PRIMARY[1]},127.0.0.1:{PG_STANDBY[1]}"
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    @property
    def management_api(self) -> str:
        return f"http://guest:guest@127.0.0.1:{MANAGEMENT_PORT}/api"

    def ctl(self, *args: str, node: str | None = None) -> str:
        """rabbitmqctl on ``node`` (default: one the test did not take down)."""
        node = node or next(n for n in NODES if n not in self.down)
        return _run("rabbitmqctl", "-q", "-n", node_name(node), *args)

    # ---- what RabbitMQ says

    def queues(self, vhost: str = "/") -> dict[str, QueueState]:
        """`rabbitmqctl list_queues name type members online`, by queue."""
        rows = json.loads(self.ctl("list_queues", "-p", vhost, "name", "type", "members", "online", "--formatter", "json"))
        return {
            r["name"]: QueueState(r["name"], r["type"], tuple(sorted(r["members"] or ())), tuple(sorted(r["online"] or ())))
            for r in rows
        }

    def queues_table(self, vhost: str = "/") -> str:
        return self.ctl("list_queues", "-p", vhost, "name", "type", "members")

    def nodes_of_services(self, services: tuple[str, ...]) -> dict[str, set[str]]:
        """Per Paraaf service, the nodes its broker connections are on (`rabbitmqctl list_connections user name`)."""
        rows = json.loads(self.ctl("list_connections", "user", "name", "--formatter", "json"))
        by_port = {str(port): node for node, port in AMQP_PORTS.items()}
        found: dict[str, set[str]] = {s: set() for s in services}
        for row in rows:  # a connection's name is "CLIENT -> NODE'S ADDRESS:PORT"
            user, port = row["user"], str(row["name"]).rpartition(":")[2]
            if user.startswith(SESSION_PREFIX + ".") and (service := user.removeprefix(SESSION_PREFIX + ".")) in found:
                found[service].add(by_port[port])
        return found

    def running_nodes(self) -> set[str]:
        answer = self.ctl("eval", "[atom_to_list(N) || N <- rabbit_nodes:all_running()].")
        return {n for n in NODES if node_name(n) in answer}

    def all_queues_whole(self, vhost: str = "/") -> bool:
        """Every node runs and every quorum queue has its three members online."""
        try:
            return self.running_nodes() == set(NODES) and all(
                len(q.online) == len(NODES) for q in self.queues(vhost).values() if q.type == "quorum"
            )
        except AssertionError:
            return False

    def wait_whole(self, vhost: str = "/", timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.all_queues_whole(vhost):
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster is not whole again within {timeout:.0f} s:\n{self.queues_table(vhost)}")
            time.sleep(0.5)

    # ---- faults

    def stop_app(self, node: str) -> None:
        """`rabbitmqctl -n NODE stop_app`: the node stays up, its broker application (and every connection to it) goes."""
        self.down.add(node)
        _run("rabbitmqctl", "-q", "-n", node_name(node), "stop_app")
        self.counts["node stopped (stop_app)"] += 1

    def start_app(self, node: str) -> None:
        _run("rabbitmqctl", "-q", "-n", node_name(node), "start_app")
        self.down.discard(node)

    def kill(self, node: str) -> None:
        """SIGKILL the node's Erlang VM (the process the node itself names: never the default broker)."""
        pid = int(self.ctl("eval", "list_to_integer(os:getpid()).", node=node).strip())  # the node says which it is
        self.down.add(node)
        os.kill(pid, 9)
        self.counts["node killed (kill -9)"] += 1

    def start_node(self, node: str) -> None:
        _run(str(DEPLOY / "start-node.sh"), node, timeout=300)
        self.down.discard(node)

    def stop_primary(self) -> None:
        """The PostgreSQL primary stopped (fast shutdown; replication is synchronous, so the standby has every commit the
        services were told of); never started again."""
        _run("pg_ctlcluster", PG_VERSION, PG_PRIMARY[0], "stop")
        self.counts["PostgreSQL primary stopped"] += 1

    def promote_standby(self) -> None:
        _run("pg_ctlcluster", PG_VERSION, PG_STANDBY[0], "promote")
        self.counts["PostgreSQL standby promoted"] += 1
