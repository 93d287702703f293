#!/usr/bin/env bash
# Stop and remove the local cluster deploy/cluster/start.sh made: its three RabbitMQ nodes (by name and by
# their own pid files) and its two PostgreSQL clusters, with their data. The default broker and database stay.
set -uo pipefail
. "$(dirname "$0")/common.sh"
[ "$(id -u)" = "0" ] || { echo "run as root (the nodes run as user rabbitmq, the databases as postgres)" >&2; exit 1; }
for n in "${RABBIT_NODES[@]}"; do
  if [ -d "$CLUSTER_DIR/rabbitmq/$n" ]; then
    timeout 30 rabbitmqctl -q -n "$(node_name "$n")" stop >/dev/null 2>&1 || true
    kill_node "$n"
  fi
done
for c in "$PG_STANDBY" "$PG_PRIMARY"; do
  if [ -d "/etc/postgresql/$PG_VERSION/$c" ]; then pg_dropcluster --stop "$PG_VERSION" "$c" 2>/dev/null || true; fi
done
rm -rf "$CLUSTER_DIR"
echo "local cluster stopped and removed"
