#!/usr/bin/env bash
# The ledger against its peer, in the same run: `transit-ledger bench peer` measures the
# embedded log's durable append and then the same workload against an events table in a
# throwaway PostgreSQL cluster at equal durability (fsync=on, synchronous_commit=on,
# full_page_writes=on), alternating the two. See docs/benchmarks.md, "Against PostgreSQL".
#
#   ops/bench.sh [flags of `transit-ledger bench peer`]
#       e.g. ops/bench.sh --repeats 5 --appenders 1,16,256 --pg-payload bytea
#
# What it does: installs Debian's PostgreSQL if missing; makes one temporary folder holding
# both the cluster's data folder and the ledger's logs (same filesystem, so the same disk);
# initdb as the `postgres` user (PostgreSQL refuses to run as root); starts the server on a
# free loopback port; builds and runs the release binary; then stops the server and deletes
# the folder, also on error or Ctrl-C.
#
# Environment:
#   BENCH_DIR         parent of the temporary folder (default: /var/tmp; it must be on the
#                     disk to measure, and not a tmpfs)
#   BENCH_PG_SHARED_BUFFERS   shared_buffers of the cluster (default 1GB)
#   BENCH_NO_BUILD=1  use target/release/transit-ledger as it is
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PARENT="${BENCH_DIR:-/var/tmp}"
SHARED_BUFFERS="${BENCH_PG_SHARED_BUFFERS:-1GB}"
PG_START_TIMEOUT_S=60

log() { echo "bench.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl ]] && echo "$dir"
}

if ! PGBIN="$(pg_bindir)"; then
    log "installing PostgreSQL (Debian package)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PGBIN="$(pg_bindir)" || die "PostgreSQL installed, but no initdb under /usr/lib/postgresql"
fi
id postgres >/dev/null 2>&1 || die "no 'postgres' user (the Debian package makes it)"

# Runs a command as the postgres user (root may not run the server).
as_postgres() {
    if [[ $(id -un) == postgres ]]; then "$@"
    elif [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"
    else sudo -u postgres -- "$@"
    fi
}

free_port() {
    local port
    for port in $(seq 55432 55532); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

mkdir -p "$PARENT"
WORK="$(mktemp -d "$PARENT/transit-bench.XXXXXX")"
PGDATA="$WORK/pg"
LEDGER_DIR="$WORK/ledger"
SOCKET_DIR="$WORK/run"
started=""

cleanup() {
    local rc=$?
    if [[ -n $started ]]; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The postgres user must reach its folders through the temporary one.
chmod 755 "$WORK"
mkdir -p "$PGDATA" "$LEDGER_DIR" "$SOCKET_DIR"
chown postgres: "$PGDATA" "$SOCKET_DIR"  # the socket and the server log

PORT="$(free_port)" || die "no free port in 55432-55532"
log "cluster in $PGDATA, port $PORT; ledger logs in $LEDGER_DIR"
as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
# Durability is left at PostgreSQL's defaults (fsync, synchronous_commit, full_page_writes all
# on; wal_sync_method fdatasync on Linux, as the ledger syncs). The rest is the usual tuning a
# team would do for a write-heavy table: enough shared buffers, checkpoints far enough apart
# that none falls inside a 3-second run, and room for 256 connections.
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 300
shared_buffers = $SHARED_BUFFERS
max_wal_size = 1GB
checkpoint_timeout = 30min
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -l "$SOCKET_DIR/postgres.log" -t "$PG_START_TIMEOUT_S" -w start >/dev/null ||
    { cat "$SOCKET_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
started=1

BIN="$REPO/target/release/transit-ledger"
if [[ ${BENCH_NO_BUILD:-} != 1 ]]; then
    (cd "$REPO" && cargo build --release --locked -p transit-ledger)
fi
[[ -x $BIN ]] || die "no $BIN (build it, or unset BENCH_NO_BUILD)"

"$BIN" bench peer \
    --postgres "host=127.0.0.1 port=$PORT user=postgres dbname=postgres" \
    --dir "$LEDGER_DIR" "$@"
