#!/usr/bin/env bash
# ci-fuzz.sh: the CI step that fuzzes the RESP scanner and reply walker for a bounded time.
#
#   CI_FUZZ_SECONDS=N scripts/ci-fuzz.sh    N seconds per target
#   scripts/ci-fuzz.sh                      45 seconds per target (the CI default)
#   CI_FUZZ_SECONDS=0 scripts/ci-fuzz.sh    skip (prints that it skipped, exits 0)
#
# Runs scripts/fuzz.sh, which installs cargo-fuzz when missing, builds the targets with the
# stable toolchain (RUSTC_BOOTSTRAP=1), fuzzes each target and copies every crash input into
# fuzz/regressions/<target>/ (replayed by `cargo test`, tests/security_malformed.rs).
#
# Cost on a 2-core machine: installing cargo-fuzz ~70 s (once; cache ~/.cargo/bin), a cold
# build of the targets ~4.5 min (cache fuzz/target to skip it), then 2 targets x N seconds.
#
# Prints a summary (per target: executions, execs/s, corpus growth, findings) and exits
# non-zero when a target found a crash, hang or out-of-memory input, or could not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${CI_FUZZ_SECONDS:-45}

if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "==> ci-fuzz.sh: FATAL: CI_FUZZ_SECONDS must be a whole number of seconds, got '$seconds'" >&2
    exit 2
fi
if [[ $seconds -eq 0 ]]; then
    echo "==> ci-fuzz.sh: skipped (CI_FUZZ_SECONDS=0)"
    exit 0
fi

echo "==> ci-fuzz.sh: fuzzing every target for ${seconds}s (set CI_FUZZ_SECONDS to change, 0 to skip)"
start=$SECONDS
status=0
"$ROOT/scripts/fuzz.sh" "$seconds" || status=$?
took=$((SECONDS - start))

if [[ $status -eq 0 ]]; then
    echo "==> ci-fuzz.sh: PASSED: no findings (${took}s in all)"
else
    echo "==> ci-fuzz.sh: FAILED (exit $status, ${took}s in all): see the fuzz.sh summary above;" \
        "new crash inputs are in fuzz/regressions/ (commit them with the fix)" >&2
fi
exit "$status"
