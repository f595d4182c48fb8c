#!/usr/bin/env bash
# A PostgreSQL primary with a synchronous standby on loopback, for tenantry's tests.
#
#   eval "$(.ci/pg.sh up)"   # installs PostgreSQL if missing (Debian packages), starts both
#                            # servers, prints the exports the tests read:
#                            #   TENANTRY_PG_URL          both hosts, target_session_attrs=read-write
#                            #   TENANTRY_PG_STANDBY_URL  the standby alone
#                            #   TENANTRY_PG_BASE         the data directories (for the drill)
#   .ci/pg.sh down           # stops both servers by their process ids and removes the data
#   .ci/pg.sh kill-primary   # SIGKILLs the primary (the failover drill)
#   .ci/pg.sh promote        # promotes the standby and clones a new synchronous standby
#
# The servers run as the `postgres` user (PostgreSQL refuses to run as root; CI runs as root),
# listen on 127.0.0.1 only (ports 55432 and 55433 unless TENANTRY_PG_PORT is set) with `trust`
# authentication, and keep everything in a fresh temporary directory. Progress goes to stderr;
# stdout carries only the exports.
set -euo pipefail

PORT0=${TENANTRY_PG_PORT:-55432}

log() { echo "pg.sh: $*" >&2; }

pgbin() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
        return 1
    fi
    echo "$bin"
}

install_postgres() {
    if pgbin >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "PostgreSQL is not installed; install the distribution's postgresql package (as root: apt-get install postgresql)"
        exit 1
    fi
    log "installing PostgreSQL from the distribution's packages"
    # The package would create and start a cluster on 5432; tenantry starts its own.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/tenantry.conf
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >&2
}

# Runs a PostgreSQL program as the user that owns the servers.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

owner() {
    if [ "$(id -u)" != 0 ]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        id tenantry-pg >/dev/null 2>&1 ||
            useradd --system --no-create-home --shell /usr/sbin/nologin tenantry-pg
        echo tenantry-pg
    fi
}

base() {
    if [ -z "${TENANTRY_PG_BASE:-}" ] || [ ! -f "$TENANTRY_PG_BASE/state" ]; then
        log "TENANTRY_PG_BASE is not set to a directory made by '.ci/pg.sh up'"
        exit 1
    fi
    echo "$TENANTRY_PG_BASE"
}

# state: "<generation> <primary dir> <primary port> <standby dir> <standby port>"
read_state() {
    read -r GEN PRIMARY PPORT STANDBY SPORT <"$BASE/state"
}

wait_sync() {
    local name=$1 i
    for i in $(seq 1 100); do
        if [ "$(as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PPORT" -U postgres -d postgres -Atqc \
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'" 2>/dev/null)" = sync ]; then
            return
        fi
        sleep 0.1
    done
    log "the standby $name did not become synchronous"
    exit 1
}

# Clones a synchronous standby named $1 from the primary into $BASE/$1 on port $2.
clone_standby() {
    local name=$1 port=$2
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PPORT" -U postgres -D "$BASE/$name" \
        -X stream -R -C -S "$name" -c fast >&2
    cat >>"$BASE/$name/postgresql.auto.conf" <<CONF
port = $port
primary_conninfo = 'host=127.0.0.1 port=$PPORT user=postgres application_name=$name'
CONF
    as_pg "$PGBIN/pg_ctl" -D "$BASE/$name" -l "$BASE/$name.log" -w -t 30 start >&2
}

exports() {
    echo "export TENANTRY_PG_BASE='$BASE'"
    echo "export TENANTRY_PG_URL='host=127.0.0.1,127.0.0.1 port=$PPORT,$SPORT user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2'"
    echo "export TENANTRY_PG_STANDBY_URL='host=127.0.0.1 port=$SPORT user=postgres dbname=postgres connect_timeout=2'"
}

stop_dir() {
    local dir=$1 pid
    [ -f "$dir/postmaster.pid" ] || return 0
    pid=$(head -1 "$dir/postmaster.pid")
    as_pg "$PGBIN/pg_ctl" -D "$dir" -m immediate -w -t 10 stop >/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
}

up() {
    install_postgres
    PGBIN=$(pgbin)
    PG_USER=$(owner)
    BASE=$(mktemp -d -t tenantry-pg.XXXXXX)
    chmod 700 "$BASE"
    [ "$(id -u)" = 0 ] && chown "$PG_USER:$PG_USER" "$BASE"
    PPORT=$PORT0
    SPORT=$((PORT0 + 1))
    as_pg "$PGBIN/initdb" -D "$BASE/p0" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    cat >>"$BASE/p0/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PPORT
unix_socket_directories = '$BASE'
wal_level = replica
max_wal_senders = 8
max_replication_slots = 8
max_connections = 300
synchronous_standby_names = 'FIRST 1 (s1)'
synchronous_commit = on
statement_timeout = 0
shared_buffers = 256MB
CONF
    echo "host replication postgres 127.0.0.1/32 trust" >>"$BASE/p0/pg_hba.conf"
    as_pg "$PGBIN/pg_ctl" -D "$BASE/p0" -l "$BASE/p0.log" -w -t 30 start >&2
    clone_standby s1 "$SPORT"
    echo "1 $BASE/p0 $PPORT $BASE/s1 $SPORT" >"$BASE/state"
    echo "$PG_USER" >"$BASE/owner"
    [ "$(id -u)" = 0 ] && chown "$PG_USER:$PG_USER" "$BASE/state" "$BASE/owner"
    wait_sync s1
    log "primary on 127.0.0.1:$PPORT, synchronous standby s1 on 127.0.0.1:$SPORT, data in $BASE"
    exports
}

down() {
    [ -n "${TENANTRY_PG_BASE:-}" ] && [ -d "$TENANTRY_PG_BASE" ] || return 0
    BASE=$TENANTRY_PG_BASE
    PGBIN=$(pgbin) || return 0
    PG_USER=$(cat "$BASE/owner" 2>/dev/null || owner)
    local dir
    for dir in "$BASE"/*/; do
        stop_dir "${dir%/}"
    done
    rm -rf "$BASE"
    log "stopped and removed $BASE"
}

kill_primary() {
    BASE=$(base)
    PGBIN=$(pgbin)
    PG_USER=$(cat "$BASE/owner")
    read_state
    local pid children
    pid=$(head -1 "$PRIMARY/postmaster.pid")
    children=$(ps -o pid= --ppid "$pid" || true)
    kill -9 "$pid" $children 2>/dev/null || true
    log "killed the primary ($PRIMARY, pid $pid)"
}

promote() {
    BASE=$(base)
    PGBIN=$(pgbin)
    PG_USER=$(cat "$BASE/owner")
    read_state
    as_pg "$PGBIN/pg_ctl" -D "$STANDBY" -w -t 30 promote >&2
    local next=$((GEN + 1)) old_primary=$PRIMARY old_port=$PPORT
    # The promoted standby inherited the old synchronous_standby_names: name the next standby,
    # or its first commit would wait forever.
    PRIMARY=$STANDBY
    PPORT=$SPORT
    as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PPORT" -U postgres -d postgres -qc \
        "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (s$next)'" >&2
    as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PPORT" -U postgres -d postgres -Atqc "SELECT pg_reload_conf()" >/dev/null
    # The old primary is fenced for good: its directory is removed, never restarted.
    stop_dir "$old_primary"
    rm -rf "$old_primary"
    SPORT=$old_port
    STANDBY=$BASE/s$next
    clone_standby "s$next" "$SPORT"
    echo "$next $PRIMARY $PPORT $STANDBY $SPORT" >"$BASE/state"
    wait_sync "s$next"
    log "promoted $PRIMARY (port $PPORT); new synchronous standby s$next on port $SPORT"
}

case "${1:-}" in
up) up ;;
down) down ;;
kill-primary) kill_primary ;;
promote) promote ;;
*)
    echo "usage: $0 up|down|kill-primary|promote" >&2
    exit 2
    ;;
esac
