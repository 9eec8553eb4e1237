#!/usr/bin/env bash
# Runs a command with a time limit, so that a test that hangs fails the run in bounded time
# (session 4's CI run hung on a deadlocked test until the CI runner's own limit killed it, with
# nothing to say where). On expiry it prints the stacks of every thread of the test processes
# still running (gdb, when the machine has it), then stops the command and fails.
#
#   ops/watchdog.sh SECONDS LABEL COMMAND [ARGS...]
#
# Exit status: the command's own, or 124 when the time ran out.
set -uo pipefail

limit="$1"
label="$2"
shift 2

# The command leads a process group of its own, so that everything it started can be stopped.
setsid "$@" &
pid=$!
# Interrupted (Ctrl-C, or the CI runner stopping us): stop the command's group too.
trap 'kill -TERM -- "-$pid" 2>/dev/null; exit 130' INT TERM

deadline=$(( $(date +%s) + limit ))
while kill -0 "$pid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "!! watchdog: '${label}' still running after ${limit} s: a test hangs" >&2
    # Test executables are cargo's target/*/deps/NAME-HASH binaries.
    for p in $(pgrep -g "$pid" 2>/dev/null); do
      exe=$(readlink "/proc/$p/exe" 2>/dev/null || true)
      case "$exe" in
        */deps/*)
          echo "!! watchdog: process $p ($exe), $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
          if command -v gdb >/dev/null 2>&1; then
            timeout 60 gdb -p "$p" -batch -ex "thread apply all bt 40" 2>/dev/null \
              | grep -E '^Thread|^#' | grep -E '^Thread| in [a-z_]+::' | cut -c1-240 >&2 || true
          fi
          ;;
      esac
    done
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    exit 124
  fi
  sleep 2
done
wait "$pid"
