# Shared by deploy/cluster/start.sh and stop.sh: the names, ports and directories of the local cluster.
# Three RabbitMQ nodes beside the default one (rabbit@localhost:5672 keeps running untouched) and a
# PostgreSQL primary with a streaming-replication standby beside the default 15/main on 5432.
CLUSTER_DIR="${PARAAF_CLUSTER_DIR:-/var/lib/paraaf-cluster}"
RABBIT_NODES=(paraaf-a paraaf-b paraaf-c)
declare -A AMQP_PORT=([paraaf-a]=5681 [paraaf-b]=5682 [paraaf-c]=5683)
declare -A DIST_PORT=([paraaf-a]=25681 [paraaf-b]=25682 [paraaf-c]=25683)
declare -A HTTP_PORT=([paraaf-a]=15681 [paraaf-b]=15682 [paraaf-c]=15683)
PG_VERSION="${PARAAF_CLUSTER_PG_VERSION:-$(ls /usr/lib/postgresql | sort -n | tail -1)}"
PG_PRIMARY=paraaf-a
PG_STANDBY=paraaf-b
declare -A PG_PORT=([paraaf-a]=5442 [paraaf-b]=5443)

node_name() { echo "$1@localhost"; }

# The environment rabbitmq-server and rabbitmqctl need to find one node: its name, config, data and ports.
node_env() {
  local n=$1 d="$CLUSTER_DIR/rabbitmq/$1"
  echo RABBITMQ_NODENAME="$(node_name "$n")" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
    RABBITMQ_DIST_PORT="${DIST_PORT[$n]}" RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" \
    RABBITMQ_PID_FILE="$d/pid" RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
}

# rabbitmqctl's own Erlang node listens on one port of a small range (35672-35682 beside a broker on 5672), shared by
# every rabbitmqctl on this machine: CLI calls that hang hold theirs and the next ones fail with "nodistribution".
# The cluster's CLI calls get a range of their own.
export RABBITMQ_CTL_DIST_PORT_MIN="${RABBITMQ_CTL_DIST_PORT_MIN:-35781}"
export RABBITMQ_CTL_DIST_PORT_MAX="${RABBITMQ_CTL_DIST_PORT_MAX:-35799}"

ctl() { local n=$1; shift; rabbitmqctl -q -n "$(node_name "$n")" "$@"; }

answers() { timeout 2 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Kill a node's Erlang VM by its pid file: only when that process still is this node's VM, started with this node's
# data directory (a pid file outlives its process, and the number may belong to another process by now); never the
# default broker.
kill_node() {
  local pidfile="$CLUSTER_DIR/rabbitmq/$1/pid" pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "RABBITMQ_MNESIA_BASE=$CLUSTER_DIR/rabbitmq/$1/mnesia"; then
    kill -9 "$pid"
  fi
}

amqp_url() {
  local hosts=() n
  for n in "${RABBIT_NODES[@]}"; do hosts+=("127.0.0.1:${AMQP_PORT[$n]}"); done
  local IFS=,
  echo "amqp://guest:guest@${hosts[*]}/"
}

database_url() {
  echo "postgresql://postgres@127.0.0.1:${PG_PORT[$PG_PRIMARY]},127.0.0.1:${PG_PORT[$PG_STANDBY]}/${1:-paraaf}?target_session_attrs=read-write"
}
