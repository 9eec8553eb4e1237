#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace
# (contract suite, domain rules, HTTP over real sockets, CLI, SIGKILL crash loop), then a
# bounded fuzzing run of the message parsers (ops/fuzz.sh).
# It installs and starts whatever the tests need: xmllint for the XSD checks, and the ActiveMQ
# broker (through ops/activemq.sh) for the broker tests.
#
#   ops/test.sh            default profile (20 crash cycles)
#   CRASH_CYCLES=100 ops/test.sh   slow profile, as CI runs it
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

# xmllint (Debian's libxml2-utils) validates the XML samples against the XSDs: an outside
# validator, so the schemas are checked by something other than our own parser.
if ! command -v xmllint >/dev/null 2>&1; then
  echo "== installing libxml2-utils (xmllint)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends libxml2-utils >/dev/null
fi

# The broker tests start ActiveMQ through ops/activemq.sh (installing it if needed); stop it
# when the suite ends, whatever the outcome.
trap 'ops/activemq.sh stop >/dev/null 2>&1 || true' EXIT
ops/activemq.sh install

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test: build"
cargo test --workspace --locked --no-run

# A test that hangs fails the run after TEST_TIMEOUT_SECONDS, with the stacks of the hung test
# process printed (ops/watchdog.sh). The suite itself takes about 6 minutes on 2 cores.
echo "== cargo test (CRASH_CYCLES=${CRASH_CYCLES:-20})"
t0=$(date +%s)
ops/watchdog.sh "${TEST_TIMEOUT_SECONDS:-1200}" "cargo test" \
  cargo test --workspace --locked -- --test-threads=2
echo "== cargo test passed in $(( $(date +%s) - t0 )) s"

# The fault profile (service crash loop, disk full, deterministic simulation): ops/faults.sh.
echo "== ops/faults.sh"
ops/faults.sh

# The message parsers under libFuzzer, FUZZ_SECONDS (60) per target, on the stable toolchain.
echo "== ops/fuzz.sh (FUZZ_SECONDS=${FUZZ_SECONDS:-60})"
ops/fuzz.sh
