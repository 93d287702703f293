#!/usr/bin/env bash
# A cluster on this machine from Debian's packages (rabbitmq-server, postgresql), no Docker:
#   RabbitMQ nodes paraaf-a, paraaf-b, paraaf-c (AMQP 5681-5683, management 15681-15683) in one cluster;
#   PostgreSQL $PG_VERSION/paraaf-a on 5442 (primary) streaming to $PG_VERSION/paraaf-b on 5443 (standby).
# Leftovers of an earlier run are removed first. Prints the settings that point Paraaf at it.
# Stop and remove it with deploy/cluster/stop.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
[ "$(id -u)" = "0" ] || { echo "run as root (the nodes run as user rabbitmq, the databases as postgres)" >&2; exit 1; }
command -v rabbitmq-server >/dev/null || { echo "install rabbitmq-server first (apt-get install rabbitmq-server)" >&2; exit 1; }
command -v pg_createcluster >/dev/null || { echo "install postgresql first (apt-get install postgresql)" >&2; exit 1; }

"$here/stop.sh" >/dev/null

wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq 1 $((seconds * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "$what not within ${seconds}s" >&2; return 1
}


mkdir -p "$CLUSTER_DIR/rabbitmq"
chmod 755 "$CLUSTER_DIR" "$CLUSTER_DIR/rabbitmq"
for n in "${RABBIT_NODES[@]}"; do
  d="$CLUSTER_DIR/rabbitmq/$n"
  mkdir -p "$d/log" "$d/mnesia"
  cat > "$d/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:${AMQP_PORT[$n]}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${HTTP_PORT[$n]}
max_message_size = 50331648
loopback_users.guest = true
CONF
  echo "[rabbitmq_management]." > "$d/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$d"
done
for n in "${RABBIT_NODES[@]}"; do "$here/start-node.sh" "$n"; done
first=${RABBIT_NODES[0]}
for n in "${RABBIT_NODES[@]:1}"; do
  { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$(node_name "$first")" && ctl "$n" start_app; } \
    >>"$CLUSTER_DIR/rabbitmq/join.log" 2>&1 || { cat "$CLUSTER_DIR/rabbitmq/join.log" >&2; exit 1; }
done
wait_until 60 "three running nodes" bash -c \
  "[ \$(rabbitmqctl -q -n $(node_name "$first") eval 'length(rabbit_nodes:all_running()).') = 3 ]"

# PostgreSQL: a primary, then a standby cloned from it with pg_basebackup -R (streaming replication).
make_pg() {  # make_pg NAME: a cluster of our own on its port, trusting local connections (replication too)
  pg_createcluster "$PG_VERSION" "$1" -p "${PG_PORT[$1]}" --start-conf=manual -- --auth-local=trust --auth-host=trust >/dev/null
  printf "listen_addresses = '127.0.0.1'\nwal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n" \
    > "/etc/postgresql/$PG_VERSION/$1/conf.d/paraaf-cluster.conf"
}
make_pg "$PG_PRIMARY"
# Synchronous replication: a commit returns once the standby has its WAL on disk, so a promoted standby holds every
# commit a service was told of. Asynchronous, a CI run lost a document at the failover, most likely a last commit of
# the primary's that the standby did not yet have when it was promoted (its logs were gone with the cluster; the
# cluster tests keep them now). Only the primary's own conf.d says so (the promoted standby, alone, must not wait).
printf "synchronous_standby_names = '*'\n" >> "/etc/postgresql/$PG_VERSION/$PG_PRIMARY/conf.d/paraaf-cluster.conf"
pg_ctlcluster "$PG_VERSION" "$PG_PRIMARY" start
make_pg "$PG_STANDBY"
standby_data="/var/lib/postgresql/$PG_VERSION/$PG_STANDBY"
find "$standby_data" -mindepth 1 -delete  # pg_basebackup fills the cluster's own (empty) data directory
runuser -u postgres -- pg_basebackup -h 127.0.0.1 -p "${PG_PORT[$PG_PRIMARY]}" -U postgres -D "$standby_data" -R -X stream -c fast
pg_ctlcluster "$PG_VERSION" "$PG_STANDBY" start
wait_until 60 "the standby streaming from the primary" bash -c \
  "[ \"\$(runuser -u postgres -- psql -p ${PG_PORT[$PG_PRIMARY]} -Atc 'SELECT count(*) FROM pg_stat_replication')\" = 1 ]"

cat <<ENV
# The local cluster runs. Point Paraaf at it (same services, only the URLs differ):
export PARAAF_AMQP_URL='$(amqp_url)'
export PARAAF_DATABASE_URL='$(database_url paraaf)'
export PARAAF_BROKER_ADMIN_API='http://guest:guest@127.0.0.1:${HTTP_PORT[$first]}/api'
ENV
