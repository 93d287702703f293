#!/usr/bin/env bash
# Make sure RabbitMQ and PostgreSQL answer at the configured URLs.
# Order of attempts: already running -> start the local server -> install it from
# Debian's packages (when root) -> docker compose (when a Docker engine answers).
# Otherwise say exactly what to install, and fail.
set -euo pipefail

amqp_url="${PARAAF_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
db_url="${PARAAF_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/paraaf}"
host_port() { python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
first = u.netloc.rpartition("@")[2].split(",")[0]  # a cluster's URL lists several host:port; its first will do
host, _, port = first.rpartition(":") if first.rpartition(":")[2].isdigit() else (first, "", "")
print(host or "127.0.0.1", port or sys.argv[2])
PY
}
answers() { timeout 2 bash -c "</dev/tcp/$1/$2" 2>/dev/null; }
wait_for() { for _ in $(seq 1 60); do answers "$1" "$2" && return 0; sleep 1; done; return 1; }
is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" ]]; }
as_root() { [[ "$(id -u)" == "0" ]]; }
docker_engine() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }
apt_install() { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }

ensure_rabbitmq() {
  read -r host port < <(host_port "$amqp_url" 5672)
  answers "$host" "$port" && return 0
  is_local "$host" || { echo "RabbitMQ at $host:$port does not answer; start it (PARAAF_AMQP_URL=$amqp_url)." >&2; return 1; }
  if ! command -v rabbitmq-server >/dev/null && as_root; then
    echo "Installing RabbitMQ from Debian's packages..."; apt_install rabbitmq-server
  fi
  if command -v rabbitmq-server >/dev/null && as_root && id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    # Debian's rabbitmq-server, run as root, goes through `su`, whose PAM limits leave the node 1024 file
    # descriptors (832 sockets): the suite's cities side by side ran out of them. Started as its user with the
    # hard limit instead.
    echo "Starting RabbitMQ..."
    (cd /var/lib/rabbitmq && su rabbitmq -s /bin/sh -c "ulimit -n $(ulimit -Hn) 2>/dev/null; /usr/lib/rabbitmq/bin/rabbitmq-server -detached") >/dev/null 2>&1 || true
  elif command -v rabbitmq-server >/dev/null; then
    echo "Starting RabbitMQ..."; rabbitmq-server -detached >/dev/null 2>&1 || true
  elif docker_engine; then
    docker compose up -d rabbitmq
  else
    echo "RabbitMQ is not installed: run 'sudo apt-get install rabbitmq-server' (or start Docker and rerun)." >&2; return 1
  fi
  wait_for "$host" "$port" || { echo "RabbitMQ did not come up on $host:$port." >&2; return 1; }
}

# Every process of a service holds a pool of up to PARAAF_DB_POOL_SIZE connections (and one or two listeners):
# five services, some run as several processes (`paraaf run all --scale`), and test cities side by side need more
# than PostgreSQL's default 100. Written before a local cluster starts; a local one already running with fewer
# slots is restarted once with the new setting (as root: the suite's scaled cities side by side need them).
MAX_CONNECTIONS=300
ensure_connection_slots() {
  as_root || return 0
  local conf_d; conf_d="$(ls -d /etc/postgresql/*/main 2>/dev/null | head -1)/conf.d"
  [ -d "$conf_d" ] && [ ! -f "$conf_d/paraaf.conf" ] || return 0
  echo "max_connections = $MAX_CONNECTIONS  # paraaf: services run as several processes" > "$conf_d/paraaf.conf"
}
raise_connection_slots() {
  local host="$1" port="$2" slots
  is_local "$host" && as_root && command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null || return 0
  slots=$(psql -h "$host" -p "$port" -U postgres -Atc "show max_connections" 2>/dev/null) || return 0
  [ -n "$slots" ] && [ "$slots" -lt "$MAX_CONNECTIONS" ] || return 0
  ensure_connection_slots
  echo "PostgreSQL allows $slots connections; restarting it with $MAX_CONNECTIONS..."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main restart || true
  wait_for "$host" "$port" || { echo "PostgreSQL did not come back on $host:$port." >&2; return 1; }
}

ensure_postgres() {
  read -r host port < <(host_port "$db_url" 5432)
  if answers "$host" "$port"; then raise_connection_slots "$host" "$port"; return; fi
  is_local "$host" || { echo "PostgreSQL at $host:$port does not answer; start it (PARAAF_DATABASE_URL=$db_url)." >&2; return 1; }
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1 && as_root; then
    echo "Installing PostgreSQL from Debian's packages..."; apt_install postgresql
    # A trial install on this machine: let local connections in without a password.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
    grep -q "paraaf-local-trust" "$hba" || sed -i '1i host all all 127.0.0.1/32 trust # paraaf-local-trust' "$hba"
  fi
  if ls /etc/postgresql/*/main >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
    ensure_connection_slots
    echo "Starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  elif docker_engine; then
    docker compose up -d postgres
  else
    echo "PostgreSQL is not installed: run 'sudo apt-get install postgresql' (or start Docker and rerun)." >&2; return 1
  fi
  wait_for "$host" "$port" || { echo "PostgreSQL did not come up on $host:$port." >&2; return 1; }
}

# The management plugin: operators' web view of queues, and the API `paraaf setup` uses for a broker
# on another machine (PARAAF_BROKER_ADMIN_API); the test suite exercises that path against this broker.
ensure_management() {
  read -r host _ < <(host_port "$amqp_url" 5672)
  is_local "$host" && as_root && command -v rabbitmq-plugins >/dev/null || return 0
  answers "$host" 15672 && return 0
  echo "Enabling RabbitMQ's management plugin..."
  rabbitmq-plugins enable --quiet rabbitmq_management >/dev/null
  wait_for "$host" 15672 || { echo "RabbitMQ's management API did not come up on $host:15672." >&2; return 1; }
}

# The broker refuses a message over 48 MiB before it reaches anyone: a submission carries at most a
# 25 MB PDF in base64 (~34 MB). Set now (rabbitmqctl eval) and for every later start (rabbitmq.conf).
MAX_MESSAGE_BYTES=50331648
ensure_max_message_size() {
  read -r host _ < <(host_port "$amqp_url" 5672)
  is_local "$host" && as_root && command -v rabbitmqctl >/dev/null || return 0
  local conf=/etc/rabbitmq/rabbitmq.conf
  grep -q '^max_message_size' "$conf" 2>/dev/null || echo "max_message_size = $MAX_MESSAGE_BYTES" >> "$conf"
  rabbitmqctl eval "application:set_env(rabbit, max_message_size, $MAX_MESSAGE_BYTES)." >/dev/null
}

ensure_rabbitmq
ensure_postgres
ensure_management
ensure_max_message_size
echo "RabbitMQ and PostgreSQL answer."
