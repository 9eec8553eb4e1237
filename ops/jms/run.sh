#!/usr/bin/env bash
# Compiles ops/jms/JmsProbe.java (once, into target/jms/) against Debian's ActiveMQ JMS client
# jars and runs it with the given arguments:
#
#   ops/jms/run.sh send QUEUE BODY [name=value...]
#   ops/jms/run.sh receive QUEUE TIMEOUT_MS
#
# The broker refuses anonymous clients: set JMS_BROKER_USER and JMS_BROKER_PASSWORD (e.g. user
# `tg` with its password from ops/activemq/credentials.dev.properties). Exit code 4: the broker
# refused the user or the queue.
#
# The jars come from `libactivemq-java` (installed by `ops/activemq.sh install`).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$REPO/ops/jms/JmsProbe.java"
OUT="$REPO/target/jms"

# Java 17 decodes its arguments with the locale's charset; without a UTF-8 locale a body
# such as "Lomé" would arrive garbled. C.UTF-8 is present on every Debian system.
export LC_ALL=C.UTF-8

# Debian installs unversioned symlinks in /usr/share/java; the broker's lib folder links to
# the same files and serves as a fallback.
find_jar() {
    local dir
    for dir in /usr/share/java /usr/share/activemq/lib /usr/share/activemq/lib/optional; do
        if [[ -f $dir/$1 ]]; then
            echo "$dir/$1"
            return 0
        fi
    done
    return 1
}

classpath=""
for jar in activemq-client.jar geronimo-jms_1.1_spec.jar hawtbuf.jar slf4j-api.jar \
    geronimo-j2ee-management-1.1-spec.jar; do
    path="$(find_jar "$jar")" || {
        echo "run.sh: $jar not found; run ops/activemq.sh install (package libactivemq-java)" >&2
        exit 1
    }
    classpath+="$path:"
done

mkdir -p "$OUT"
# Tests run in parallel and may all ask for the probe at once; one compiles, the rest wait.
exec 9>"$OUT/.compile.lock"
flock -w 120 9
if [[ ! -f $OUT/JmsProbe.class || $SRC -nt $OUT/JmsProbe.class ]]; then
    javac -encoding UTF-8 -nowarn -d "$OUT" -cp "$classpath" "$SRC"
fi
exec 9>&-

# slf4j-nop silences the "no SLF4J binding" warning; it is optional.
runtime="$classpath$OUT"
if nop="$(find_jar slf4j-nop.jar)"; then runtime="$nop:$runtime"; fi

exec java -Xmx128M -Dfile.encoding=UTF-8 -cp "$runtime" JmsProbe "$@"
