#!/usr/bin/env bash
# Runs the project's Apache ActiveMQ Classic broker (Debian's `activemq` package) from a
# folder of its own, without the init script, so tests and developers get the same broker
# CI gets. See docs/broker.md for the queue naming and why the config looks the way it does.
#
#   ops/activemq.sh install   install the Debian packages if missing (idempotent, quiet)
#   ops/activemq.sh start     install if needed, then start the broker in the background and
#                             wait until STOMP and OpenWire accept connections (idempotent)
#   ops/activemq.sh stop      SIGTERM, bounded wait, then SIGKILL
#   ops/activemq.sh status    exit 0 iff the broker is running and both ports listen
#   ops/activemq.sh purge     stop, then delete the instance folder (queues, KahaDB, logs)
#
# Environment:
#   ACTIVEMQ_INSTANCE        instance folder (default: $REPO/target/activemq)
#   ACTIVEMQ_STOMP_PORT      STOMP 1.2 port (default 61613)
#   ACTIVEMQ_OPENWIRE_PORT   OpenWire (JMS) port (default 61616)
#   ACTIVEMQ_START_TIMEOUT   seconds to wait for both ports (default 60)
#   ACTIVEMQ_HEAP            maximum heap (default 512M; the limits in activemq.xml assume it)
#   ACTIVEMQ_CREDENTIALS_FILE  the users' passwords, `transit.password.<user>=...` per line
#                            (default: ops/activemq/credentials.dev.properties, DEVELOPMENT ONLY;
#                            production points this at its own file, chmod 600, outside the
#                            repository). Read by the broker itself: passwords never appear on
#                            its command line or in this script's output.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AMQ_HOME=/usr/share/activemq
AMQ_JAR="$AMQ_HOME/bin/activemq.jar"
JMS_CLIENT_JAR=/usr/share/java/activemq-client.jar
INSTANCE="${ACTIVEMQ_INSTANCE:-$REPO/target/activemq}"
STOMP_PORT="${ACTIVEMQ_STOMP_PORT:-61613}"
OPENWIRE_PORT="${ACTIVEMQ_OPENWIRE_PORT:-61616}"
START_TIMEOUT_S="${ACTIVEMQ_START_TIMEOUT:-60}"
STOP_TIMEOUT_S=30
HEAP="${ACTIVEMQ_HEAP:-512M}"
DEV_CREDENTIALS="$REPO/ops/activemq/credentials.dev.properties"
CREDENTIALS="${ACTIVEMQ_CREDENTIALS_FILE:-$DEV_CREDENTIALS}"
PID_FILE="$INSTANCE/activemq.pid"
LOG_FILE="$INSTANCE/data/activemq.log"
CONSOLE_LOG="$INSTANCE/data/console.log"

log() { echo "activemq.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Root runs apt-get directly (CI); a developer without root goes through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

installed() {
    [[ -f $AMQ_JAR && -f $JMS_CLIENT_JAR ]] && command -v java >/dev/null && command -v javac >/dev/null
}

cmd_install() {
    installed && return 0
    local packages=(activemq libactivemq-java default-jre-headless)
    # The JMS interop probe (ops/jms) compiles Java; only a JDK brings javac.
    command -v javac >/dev/null || packages+=(default-jdk-headless)
    export DEBIAN_FRONTEND=noninteractive
    # A fresh image has no package lists at all; refreshing them is the slow part, so it
    # happens only when apt cannot see the package, or when an install fails on stale lists.
    if ! apt-cache show activemq >/dev/null 2>&1; then
        log "apt-get update"
        as_root apt-get update -qq >/dev/null
    fi
    log "installing ${packages[*]}"
    if ! as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
        log "install failed, refreshing package lists and retrying once"
        as_root apt-get update -qq >/dev/null
        as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    fi
    installed || die "packages installed but $AMQ_JAR, $JMS_CLIENT_JAR, java or javac is still missing"
}

# The PID file alone can lie (stale file, PID reused by another program), so the process
# must also be the broker started from this instance folder.
broker_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dactivemq.base=$INSTANCE " || return 1
    echo "$pid"
}

# Reads the kernel's socket table instead of connecting: a probe connection would make the
# broker log a failed transport every time, and `ss`/`nc` are not on a bare CI image.
port_listening() {
    local hex
    hex="$(printf ':%04X' "$1")"
    awk -v port="$hex" '$4 == "0A" && substr($2, length($2) - 4) == port { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

running() {
    broker_pid >/dev/null && port_listening "$STOMP_PORT" && port_listening "$OPENWIRE_PORT"
}

print_addresses() {
    echo "ActiveMQ running (pid $(broker_pid)): stomp://127.0.0.1:$STOMP_PORT tcp://127.0.0.1:$OPENWIRE_PORT"
    echo "log: $LOG_FILE"
}

cmd_start() {
    cmd_install
    mkdir -p "$INSTANCE"
    # Two test binaries may call `start` at the same time; only one may launch a broker.
    exec 9>"$INSTANCE/.start.lock"
    flock -w "$((START_TIMEOUT_S + 10))" 9 || die "timed out waiting for another start to finish"

    local pid
    if pid="$(broker_pid)"; then
        if ! running; then
            log "broker pid $pid is up, waiting for its ports"
            wait_for_ports "$pid"
        fi
        print_addresses
        return 0
    fi
    rm -f "$PID_FILE"
    for port in "$STOMP_PORT" "$OPENWIRE_PORT"; do
        port_listening "$port" && die "port $port is already taken by another process (another broker instance?)"
    done

    check_credentials
    mkdir -p "$INSTANCE/conf" "$INSTANCE/data" "$INSTANCE/tmp"
    # The config is copied on every start so that an edit under ops/activemq/ takes effect
    # with a restart; the instance's own state lives only in data/.
    cp "$REPO"/ops/activemq/* "$INSTANCE/conf/"

    # setsid detaches the broker from the caller's session and process group, so that the
    # test harness ending (or a Ctrl-C in the caller's terminal) does not take it down; the
    # redirections matter as much: a caller capturing our output would otherwise wait for
    # the broker to close the inherited pipe, that is forever. `9>&-` keeps the start lock
    # out of the broker, or the lock would be held for as long as the broker runs.
    setsid java -Xms256M "-Xmx$HEAP" \
        -Djava.awt.headless=true \
        "-Dactivemq.home=$AMQ_HOME" \
        "-Dactivemq.base=$INSTANCE" \
        "-Dactivemq.conf=$INSTANCE/conf" \
        "-Dactivemq.data=$INSTANCE/data" \
        "-Djava.io.tmpdir=$INSTANCE/tmp" \
        "-Dlog4j.configuration=file:$INSTANCE/conf/log4j.properties" \
        "-Dtransit.stomp.port=$STOMP_PORT" \
        "-Dtransit.openwire.port=$OPENWIRE_PORT" \
        "-Dtransit.credentials=$CREDENTIALS" \
        -jar "$AMQ_JAR" start "xbean:file:$INSTANCE/conf/activemq.xml" \
        </dev/null >"$CONSOLE_LOG" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    wait_for_ports "$pid"
    print_addresses
}

# Fails early, naming what is missing (never a value), when the credentials file cannot serve
# every user activemq.xml names; the broker would otherwise die at start-up on an unresolvable
# placeholder. The user list comes from activemq.xml itself, so the two cannot drift apart.
check_credentials() {
    [[ -r $CREDENTIALS ]] || die "credentials file $CREDENTIALS is missing or unreadable (ACTIVEMQ_CREDENTIALS_FILE)"
    CREDENTIALS="$(realpath "$CREDENTIALS")"
    local key missing=()
    for key in $(grep -o '\${transit\.password\.[a-z0-9_-]*}' "$REPO/ops/activemq/activemq.xml" | tr -d '${}' | sort -u); do
        grep -Eq "^[[:space:]]*${key//./\\.}[[:space:]]*[=:][[:space:]]*[^[:space:]]" "$CREDENTIALS" || missing+=("$key")
    done
    ((${#missing[@]} == 0)) || die "$CREDENTIALS has no password for: ${missing[*]}"
    if [[ $CREDENTIALS == "$(realpath "$DEV_CREDENTIALS")" ]]; then
        log "using the DEVELOPMENT credentials ($DEV_CREDENTIALS); set ACTIVEMQ_CREDENTIALS_FILE in production"
    elif [[ -n $(find "$CREDENTIALS" -perm /077 2>/dev/null) ]]; then
        log "warning: $CREDENTIALS is readable by other users than its owner (chmod 600 it)"
    fi
}

wait_for_ports() {
    local pid=$1 deadline=$((SECONDS + START_TIMEOUT_S))
    until port_listening "$STOMP_PORT" && port_listening "$OPENWIRE_PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "broker exited during start-up; last lines of $CONSOLE_LOG and $LOG_FILE:"
            tail -n 30 "$CONSOLE_LOG" "$LOG_FILE" >&2 2>/dev/null || true
            rm -f "$PID_FILE"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            log "ports $STOMP_PORT/$OPENWIRE_PORT not listening after ${START_TIMEOUT_S}s; last lines of $LOG_FILE:"
            tail -n 30 "$LOG_FILE" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.2
    done
}

cmd_stop() {
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    if running; then
        print_addresses
    else
        echo "ActiveMQ not running (instance $INSTANCE)"
        return 1
    fi
}

cmd_purge() {
    cmd_stop
    # A mistyped ACTIVEMQ_INSTANCE must never turn into `rm -rf /`.
    [[ -n $INSTANCE && $INSTANCE != / && $INSTANCE != "$REPO" ]] || die "refusing to delete '$INSTANCE'"
    rm -rf "$INSTANCE"
    log "deleted $INSTANCE"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    purge) cmd_purge ;;
    *) echo "usage: $0 install|start|stop|status|purge" >&2; exit 2 ;;
esac
