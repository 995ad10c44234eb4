#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time.
#   usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Installs cargo-fuzz from crates.io when missing. RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept the nightly-only flags cargo-fuzz passes to rustc. Exits non-zero when a
# target finds a crash (the input lands in fuzz/artifacts/<target>/).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    # Start from the committed seeds; libFuzzer adds what it learns to corpus/.
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "== fuzzing $target for ${seconds}s"
    # -s none: safe Rust, AddressSanitizer adds cost and no findings; -a: keep debug
    # assertions, hence integer overflow checks.
    cargo fuzz run -s none -a "$target" -- \
        -max_total_time="$seconds" -dict=resp.dict -print_final_stats=1
done
