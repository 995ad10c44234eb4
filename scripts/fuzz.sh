#!/usr/bin/env bash
# fuzz.sh: runs every cargo-fuzz target in fuzz/ for a bounded time, from a fresh machine.
#
#   usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default: 60 s, every target)
#
# 1. Installs what is missing: a C++ compiler (libfuzzer-sys compiles libFuzzer; apt-get
#    install g++, with sudo when not root) and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# 2. Builds the targets once (`cargo fuzz build -s none -a`). The stable toolchain is enough:
#    RUSTC_BOOTSTRAP=1 lets it accept the nightly-only flags cargo-fuzz passes to rustc.
# 3. Runs each target for SECONDS_PER_TARGET (-max_total_time), starting from fuzz/corpus/<t>
#    (what earlier runs learned), fuzz/seeds/<t> and fuzz/regressions/<t> (every crash ever
#    found, so a regression fails at once).
# 4. Copies each new crash input (fuzz/artifacts/<t>/crash-*, also oom-*, timeout-*, leak-*)
#    into fuzz/regressions/<t>/, which is committed and which `cargo test` replays
#    (tests/security_malformed.rs, through the same checks in fuzz/harness/<t>.rs).
# 5. Prints a summary: time to install and build, and per target the executions, execs/s,
#    corpus growth, peak RSS and findings. Full libFuzzer logs: fuzz/target/fuzz-logs/<t>.log.
#
# Exit status: 0 when no target found anything, 1 when one did (or could not run), 2 on
# bad usage.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/fuzz

log() {
    echo "==> fuzz.sh: $*" >&2
}

die() {
    echo "==> fuzz.sh: FATAL: $*" >&2
    exit 1
}

if [[ ${1-} == -h || ${1-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit 0
fi

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
shift || true

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

command -v cargo >/dev/null || die "cargo not found: install Rust first (https://rustup.rs)"

# libfuzzer-sys builds libFuzzer (C++) with the `cc` crate.
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
    command -v apt-get >/dev/null || die "no C++ compiler (needed to build libFuzzer); install g++"
    log "apt-get install g++ (libFuzzer is C++)"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends g++
fi

install_took=0
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo install cargo-fuzz --locked"
    start=$SECONDS
    cargo install cargo-fuzz --locked
    install_took=$((SECONDS - start))
fi
log "using $(cargo fuzz --version)"

cd "$FUZZ"
export RUSTC_BOOTSTRAP=1
# -s none: the code under test is safe Rust, so AddressSanitizer finds nothing there and
# halves the speed. -a: keep debug assertions, hence integer overflow checks.
FLAGS=(-s none -a)

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[[ ${#targets[@]} -gt 0 ]] || die "no fuzz targets in $FUZZ/fuzz_targets"

log "building ${targets[*]}"
start=$SECONDS
cargo fuzz build "${FLAGS[@]}" || die "cargo fuzz build failed"
build_took=$((SECONDS - start))

logs=$FUZZ/target/fuzz-logs
mkdir -p "$logs"
summary=()
failed=0
# One libFuzzer final-stats value (`stat::NAME: VALUE`) from a log, or "?".
stat() {
    local value
    value=$(grep -a "^stat::$2:" "$1" | tail -n 1 | awk '{print $2}') || true
    echo "${value:-?}"
}
# Files a run leaves behind when it finds something.
findings() {
    find "$FUZZ/artifacts/$1" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) \
        -printf '%f\n' 2>/dev/null | sort || true
}

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target"
    corpora=("corpus/$target" "regressions/$target")
    [[ -d "seeds/$target" ]] && corpora+=("seeds/$target")
    corpus_before=$(find "corpus/$target" -type f | wc -l)
    before=$(findings "$target")
    log "fuzzing $target for ${seconds}s (log: $logs/$target.log)"
    status=0
    # libFuzzer adds what it learns to the first corpus dir only: seeds and regressions stay
    # as committed. -timeout: one input running 10 s counts as a hang.
    cargo fuzz run "${FLAGS[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -dict="$FUZZ/resp.dict" -print_final_stats=1 >"$logs/$target.log" 2>&1 || status=$?
    # The last libFuzzer status lines, so a CI log shows progress without the whole run.
    grep -a -E '^#[0-9]+' "$logs/$target.log" | tail -n 3 >&2 || true
    new=$(comm -13 <(echo "$before") <(findings "$target") | sed '/^$/d')
    for file in $new; do
        cp -n "artifacts/$target/$file" "regressions/$target/$file"
        log "$target FOUND $file: copied to fuzz/regressions/$target/$file"
        log "  reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a $target regressions/$target/$file"
    done
    # An input found before (a committed regression or an earlier artifact) that still fails:
    # libFuzzer writes it again under the same name, so it is not "new".
    unit=$(grep -a -o 'Test unit written to [^ ]*' "$logs/$target.log" | tail -n 1 |
        sed 's/^Test unit written to //') || true
    verdict=ok
    if [[ -n $new ]]; then
        verdict="FOUND $(echo "$new" | wc -l): ${new//$'\n'/ }"
        failed=1
    elif [[ $status -ne 0 && -n $unit ]]; then
        cp -n "$unit" "regressions/$target/" 2>/dev/null || true
        log "$target still fails on a known input: $unit"
        verdict="STILL FAILS on $(basename "$unit")"
        failed=1
    elif [[ $status -ne 0 ]]; then
        log "$target: cargo fuzz run exited with $status and no finding; log tail:"
        tail -n 30 "$logs/$target.log" >&2
        verdict="FAILED (exit $status)"
        failed=1
    fi
    corpus_after=$(find "corpus/$target" -type f | wc -l)
    summary+=("$(printf '%-14s %12s execs %8s/s  corpus %5s -> %-5s peak %5s MB  %s' \
        "$target" "$(stat "$logs/$target.log" number_of_executed_units)" \
        "$(stat "$logs/$target.log" average_exec_per_sec)" "$corpus_before" "$corpus_after" \
        "$(stat "$logs/$target.log" peak_rss_mb)" "$verdict")")
done

echo "==> fuzz.sh summary (${seconds}s per target; cargo-fuzz install ${install_took}s, build ${build_took}s):"
printf '    %s\n' "${summary[@]}"
if [[ $failed -ne 0 ]]; then
    echo "==> fuzz.sh: FINDINGS: inputs are in fuzz/regressions/; fix the bug, keep the input (cargo test replays it)" >&2
    exit 1
fi
echo "==> fuzz.sh: no findings"
