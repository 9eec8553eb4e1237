#!/usr/bin/env bash
# The fault-testing profile, bounded for CI (ops/test.sh runs it after the main suite):
#
#   faults_dst                 deterministic simulation: ledger + log + projections in one
#                              process on a manual clock; seeded reorders, duplicates, crashes
#                              and torn tails; invariants after every step
#   faults_service_crash_loop  the real `serve` under simulated HTTP load, SIGKILLed at seeded
#                              instants and restarted; exactly-once, verify, views == rebuild
#   faults_disk_full           `serve` on a small loop-mounted ext4 (tmpfs if no loop device;
#                              needs root): 507 STORAGE_FULL, nothing corrupt, recovery with
#                              and without a restart
#   faults_broker_loop         `serve --broker` under STOMP load from `tg`/`bf` while the shared
#                              ActiveMQ is restarted (ops/activemq.sh stop/start); confirmed =
#                              recorded once, queues drained, fan-out at least once. Last, since
#                              it stops the broker; it leaves the broker running
#
# They are test targets with `test = false` (services/transit-ledger/Cargo.toml), so the main
# `cargo test --workspace` leaves them out; here each runs by name, one after the other.
#
# Sizes (CI defaults):     FAULT_CRASH_CYCLES=8 FAULT_MOVEMENTS=250 FAULT_SENDERS=16
#                          FAULT_DST_RUNS=4 FAULT_DST_MOVEMENTS=40 FAULT_DST_CHECK_EVERY=25
#                          FAULT_DISK_MB=16 FAULT_DISK_HEADROOM_KB=192 FAULT_MOVEMENTS_DISK=120
#                          FAULT_BROKER_RESTARTS=3 FAULT_BROKER_JOURNEYS=100
#                          FAULT_BROKER_PRODUCERS=12 FAULT_BROKER_BURST=50
# Replaying a failure:     FAULT_SEED=<n> (crash loop, disk full), FAULT_DST_SEED=<n> (one DST
#                          schedule), FAULT_BROKER_SEED=<n> (restart points); every run prints
#                          its seeds.
# The service's log level: FAULT_SERVE_LOG (default warn).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
tests=(faults_dst faults_service_crash_loop faults_disk_full faults_broker_loop)

echo "== faults: clippy"
cargo clippy -p transit-ledger --locked $(printf -- '--test %s ' "${tests[@]}") -- -D warnings

echo "== faults: build"
cargo test -p transit-ledger --locked --no-run $(printf -- '--test %s ' "${tests[@]}")

for t in "${tests[@]}"; do
  echo "== faults: $t"
  t0=$(date +%s)
  ops/watchdog.sh "${FAULT_TIMEOUT_SECONDS:-600}" "$t" \
    cargo test -p transit-ledger --locked --test "$t" -- --nocapture --test-threads=1
  echo "== faults: $t passed in $(( $(date +%s) - t0 )) s"
done

echo "== faults: all passed in $(( $(date +%s) - started )) s"
