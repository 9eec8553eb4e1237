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
#
# They are test targets with `test = false` (services/transit-ledger/Cargo.toml), so the main
# `cargo test --workspace` leaves them out; here each runs by name, one after the other.
#
# Sizes (CI defaults):     FAULT_CRASH_CYCLES=8 FAULT_MOVEMENTS=250 FAULT_SENDERS=16
#                          FAULT_DST_RUNS=4 FAULT_DST_MOVEMENTS=40 FAULT_DST_CHECK_EVERY=25
#                          FAULT_DISK_MB=16 FAULT_DISK_HEADROOM_KB=192 FAULT_MOVEMENTS_DISK=120
# Replaying a failure:     FAULT_SEED=<n> (crash loop, disk full), FAULT_DST_SEED=<n> (one DST
#                          schedule); every run prints its seeds.
# The service's log level: FAULT_SERVE_LOG (default warn).
#
# Known finding (not fixed here): a record whose header reached the disk but whose payload
# reads back as zeros up to the end of the file (a size update that outlived its data, as XFS
# can leave after a power cut) is judged damage ("payload checksum mismatch"), not a torn
# tail, so the store refuses to open until an operator cuts it. The DST tears appends by
# cutting them or zero-filling them from their first byte, which the store recovers from.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
tests=(faults_dst faults_service_crash_loop faults_disk_full)

echo "== faults: clippy"
cargo clippy -p transit-ledger --locked $(printf -- '--test %s ' "${tests[@]}") -- -D warnings

echo "== faults: build"
cargo test -p transit-ledger --locked --no-run $(printf -- '--test %s ' "${tests[@]}")

for t in "${tests[@]}"; do
  echo "== faults: $t"
  t0=$(date +%s)
  cargo test -p transit-ledger --locked --test "$t" -- --nocapture --test-threads=1
  echo "== faults: $t passed in $(( $(date +%s) - t0 )) s"
done

echo "== faults: all passed in $(( $(date +%s) - started )) s"
