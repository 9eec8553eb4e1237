#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of the workspace
# (contract suite, domain rules, HTTP over real sockets, CLI, SIGKILL crash loop).
# It installs and starts whatever the tests need; today that is only the Rust toolchain's
# own components, since the embedded event log needs no server.
#
#   ops/test.sh            default profile (20 crash cycles)
#   CRASH_CYCLES=100 ops/test.sh   slow profile, as CI runs it
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (CRASH_CYCLES=${CRASH_CYCLES:-20})"
cargo test --workspace --locked -- --test-threads=2
