#!/usr/bin/env bash
# Start one node of the local cluster again (after `rabbitmqctl -n NODE@localhost stop`, a crash or kill -9):
#   deploy/cluster/start-node.sh paraaf-b
# It rejoins its cluster by itself (its membership is in its own data directory); returns once it runs.
set -euo pipefail
. "$(dirname "$0")/common.sh"
n=${1:?which node: ${RABBIT_NODES[*]}}
[ -n "${AMQP_PORT[$n]:-}" ] || { echo "no node $n in this cluster (${RABBIT_NODES[*]})" >&2; exit 1; }
[ -d "$CLUSTER_DIR/rabbitmq/$n" ] || { echo "the cluster was never started: run deploy/cluster/start.sh" >&2; exit 1; }
env $(node_env "$n") rabbitmq-server -detached >/dev/null 2>&1
for _ in $(seq 1 240); do ctl "$n" await_startup >/dev/null 2>&1 && exit 0; sleep 0.5; done
echo "node $n did not start within 120s; see $CLUSTER_DIR/rabbitmq/$n/log" >&2
exit 1
