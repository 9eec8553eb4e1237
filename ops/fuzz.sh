#!/usr/bin/env bash
# Fuzzes the message parsers (the cargo-fuzz targets in fuzz/) for a bounded time each, and
# fails on the first crash, panic, timeout or out-of-memory, printing the input and how to
# replay it. ops/test.sh runs it after the tests, so CI does too.
#
#   ops/fuzz.sh                           every target, FUZZ_SECONDS (60) each
#   FUZZ_SECONDS=600 ops/fuzz.sh xml_message   one target, longer
#
# Targets: xml_message (transit-xml decode + round trips), json_message (InboundMessage from
# JSON + round trips through JSON and XML), signature_header (Transit-Signature text),
# stored_event (event decode with upcasting). fuzz/src/lib.rs says what each checks.
#
# The toolchain is the stable one: cargo-fuzz's -Z flags are allowed there by
# RUSTC_BOOTSTRAP=1 (no nightly is needed or fetched). No sanitizer (`-s none`): the parsers
# are safe Rust, so a bug shows up as a panic, which libFuzzer catches without one; debug
# assertions and overflow checks stay on. Corpora: fuzz/seeds/<target>/ (committed, made by
# fuzz/examples/make_seeds.rs) and, for xml_message, schemas/xml/samples/; what the fuzzer
# finds goes into fuzz/corpus/<target>/ (ignored by git, kept between runs on one machine).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
# Empty: the default toolchain (CI machines have one, stable, under whatever name rustup gave it).
FUZZ_TOOLCHAIN="${FUZZ_TOOLCHAIN:-}"
TC=()
[[ -n $FUZZ_TOOLCHAIN ]] && TC=("+${FUZZ_TOOLCHAIN}")
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
# Targets run side by side, one per core (the machine has 2).
FUZZ_JOBS="${FUZZ_JOBS:-2}"
# Named limits of one fuzz input: bytes, seconds, memory. 16 KiB is four times the largest
# sample (a declaration) and reaches the XML reader's per-element limits (text, names, depth,
# attributes); its whole-message limits (512 KiB, 20,000 elements) have their own tests in
# proto/transit-xml/tests/hostile.rs, and would only slow every run down here.
FUZZ_INPUT_LEN_MAX=16384
FUZZ_INPUT_SECONDS_MAX=10
FUZZ_RSS_MB_MAX=2048
# 16 codegen units: a quicker instrumented build on 2 cores (cargo-fuzz defaults to 1).
FUZZ_BUILD_FLAGS=(--sanitizer none --codegen-units 16)
ALL_TARGETS=(xml_message json_message signature_header stored_event)

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=("${ALL_TARGETS[@]}")
fi

export RUSTC_BOOTSTRAP=1
cargo_fuzz() {
  cargo "${TC[@]}" fuzz "$@"
}

if [ "$(cargo_fuzz --version 2>/dev/null || true)" != "cargo-fuzz ${CARGO_FUZZ_VERSION}" ]; then
  echo "== installing cargo-fuzz ${CARGO_FUZZ_VERSION}"
  cargo "${TC[@]}" install cargo-fuzz --locked --version "${CARGO_FUZZ_VERSION}"
fi

# The fuzz crate is a workspace of its own, so the root's `cargo fmt --all` does not see it.
(cd fuzz && cargo "${TC[@]}" fmt --check)

echo "== cargo fuzz build ($(rustc "${TC[@]}" --version), ${FUZZ_BUILD_FLAGS[*]})"
(cd fuzz && cargo_fuzz build "${FUZZ_BUILD_FLAGS[@]}")

# Dictionaries, made afresh so they follow the schema: the XML element names of the XSDs, and
# the JSON field names of the seeds.
dicts=fuzz/target/dicts
mkdir -p "$dicts"
grep -ho 'name="[A-Za-z]*"' schemas/xml/*.xsd | sed 's/^name=//' | sort -u >"$dicts/xml_message.dict"
cat fuzz/seeds/json_message/*.json | grep -o '"[A-Za-z]*":' | sed 's/:$//' | sort -u \
  >"$dicts/json_message.dict"

# Runs one target for FUZZ_SECONDS; its libFuzzer output goes to fuzz/artifacts/<target>.log.
run_target() {
  local target="$1"
  local corpora=("fuzz/seeds/${target}")
  local args=(
    "-max_total_time=${FUZZ_SECONDS}"
    "-max_len=${FUZZ_INPUT_LEN_MAX}"
    "-timeout=${FUZZ_INPUT_SECONDS_MAX}"
    "-rss_limit_mb=${FUZZ_RSS_MB_MAX}"
    "-print_final_stats=1"
  )
  if [ "$target" = xml_message ]; then
    corpora+=(schemas/xml/samples/journey schemas/xml/samples/other schemas/xml/samples/outbound)
  fi
  if [ -f "$dicts/${target}.dict" ]; then
    args+=("-dict=../${dicts}/${target}.dict")
  fi
  mkdir -p "fuzz/corpus/${target}" "fuzz/artifacts/${target}"
  # cargo fuzz runs from fuzz/, so corpus paths are given from there.
  (cd fuzz && cargo_fuzz run "${FUZZ_BUILD_FLAGS[@]}" "$target" "corpus/${target}" \
    "${corpora[@]/#/../}" -- "${args[@]}") >"fuzz/artifacts/${target}.log" 2>&1
}

# Prints what a failed target left behind: the input (base64, so it survives a CI log) and
# the command that replays it.
report_failure() {
  local target="$1"
  echo "!! ${target}: the fuzzer failed; the end of its output:"
  tail -n 40 "fuzz/artifacts/${target}.log" | sed 's/^/   /'
  local input
  input="$(ls -t fuzz/artifacts/"${target}"/{crash,timeout,oom,leak}-* 2>/dev/null | head -n 1 || true)"
  if [ -n "$input" ]; then
    echo "!! ${target}: failing input: ${input} ($(wc -c <"$input") bytes), base64:"
    base64 -w 0 "$input"
    echo
    echo "!! replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo ${TC[*]} fuzz run ${FUZZ_BUILD_FLAGS[*]} ${target} ${input#fuzz/})"
    echo "!!   (from the base64: echo '<base64>' | base64 -d > /tmp/input, then the same with /tmp/input)"
  fi
}

echo "== fuzzing ${targets[*]}: ${FUZZ_SECONDS} s each, ${FUZZ_JOBS} at a time"
failed=()
# In batches of FUZZ_JOBS: every run lasts FUZZ_SECONDS, so a batch ends all at once.
for ((i = 0; i < ${#targets[@]}; i += FUZZ_JOBS)); do
  batch=("${targets[@]:i:FUZZ_JOBS}")
  pids=()
  for target in "${batch[@]}"; do
    run_target "$target" &
    pids+=($!)
  done
  for j in "${!batch[@]}"; do
    wait "${pids[$j]}" || failed+=("${batch[$j]}")
  done
done

for target in "${targets[@]}"; do
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/artifacts/${target}.log" | grep -o '[0-9]*$' || echo '?')"
  corpus="$(find "fuzz/corpus/${target}" -type f | wc -l)"
  echo "   ${target}: ${runs} inputs run, corpus of ${corpus}"
done
for target in "${failed[@]}"; do
  report_failure "$target"
done
# A closing line in the plain 'N passed, N failed' form that CI reads.
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
