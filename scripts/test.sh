#!/usr/bin/env bash
# test.sh: slotgate's whole test suite, from a fresh Debian machine to a verdict.
#
# 1. Installs what is missing (apt-get, with sudo when not root): redis-server and redis-tools
#    (the integration tests spawn real Redis Cluster nodes), dnsmasq-base, util-linux
#    (`unshare`, for the Sentinel test that moves Redis pods by name), python3, and redis-py 8
#    (`pip install 'redis>=8'`; into target/test-venv when the system Python refuses pip).
#    Fails at once if redis-server is still missing afterwards. For the admin page's browser
#    test (tests/ops_page_browser.rs): Debian's chromium (/usr/bin/chromium, apt-get) and
#    Playwright's Python package (`pip install playwright`, into the same python3 as
#    redis-py). Playwright is told never to download a browser: the test launches
#    /usr/bin/chromium itself.
# 2. cargo fmt --check
# 3. cargo clippy --all-targets -- -D warnings
# 4. cargo build
# 5. the tests: `cargo nextest run` when cargo-nextest is installed (its "Summary" line is
#    what CI reads), else `cargo test`; extra arguments go to the runner (a test name filter)
# 6. cargo test --doc
#
# Every step runs even after an earlier one failed, so one run shows every problem; the exit
# status is non-zero if any step failed, and a summary at the end says which.
#
# Usage: scripts/test.sh [test runner arguments...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() {
    echo "==> test.sh: $*" >&2
}

die() {
    echo "==> test.sh: FATAL: $*" >&2
    exit 1
}

if [[ ${1-} == -h || ${1-} == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit 0
fi

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null ||
        die "missing $* and this machine has no apt-get; install them by hand"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

install_system_deps() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v python3 >/dev/null || missing+=(python3)
    command -v dnsmasq >/dev/null || [[ -x /usr/sbin/dnsmasq ]] || missing+=(dnsmasq-base)
    # tests/mode_sentinel.rs runs Redis in mount namespaces (a test /etc/hosts per process).
    command -v unshare >/dev/null || missing+=(util-linux)
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
    command -v redis-server >/dev/null ||
        die "redis-server is still missing after the install attempt; the integration tests" \
            "spawn real Redis nodes and cannot run without it (apt-get install redis-server)"
    command -v redis-cli >/dev/null ||
        die "redis-cli is still missing after the install attempt (apt-get install redis-tools)"
    command -v python3 >/dev/null || die "python3 is still missing after the install attempt"
    log "using $(redis-server --version | cut -d' ' -f1-3) at $(command -v redis-server)"
}

# True when python3 on PATH imports redis-py 8 or newer.
has_redis_py() {
    python3 -c 'import sys, redis; sys.exit(int(redis.__version__.split(".")[0]) < 8)' \
        2>/dev/null
}

ensure_redis_py() {
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
    if ! has_redis_py && python3 -m pip --version >/dev/null 2>&1; then
        # Works with pyenv, virtualenvs and distributions without PEP 668 protection.
        log "pip install 'redis>=8'"
        python3 -m pip install -q 'redis>=8' 2>/dev/null ||
            log "pip refused (externally managed Python?); using a virtualenv instead"
    fi
    if ! has_redis_py; then
        # Debian 12's python3 refuses pip installs (PEP 668): use a venv under target/ and
        # put it first on PATH, so the tests' `python3 tests/clients/...` sees redis-py.
        local venv=$ROOT/target/test-venv
        if ! "$venv/bin/python3" -m pip --version >/dev/null 2>&1; then
            rm -rf "$venv"
            python3 -m venv "$venv" 2>/dev/null || {
                rm -rf "$venv"
                apt_install python3-venv python3-pip
                python3 -m venv "$venv"
            }
        fi
        log "pip install 'redis>=8' into $venv"
        "$venv/bin/python3" -m pip install -q 'redis>=8'
        export PATH="$venv/bin:$PATH"
    fi
    has_redis_py || die "could not install redis-py 8 for $(command -v python3)"
    log "using redis-py $(python3 -c 'import redis; print(redis.__version__)') with $(command -v python3)"
}

# Chromium and Playwright for tests/ops_page_browser.rs; the test fails (never skips)
# without them, so they are installed here.
ensure_browser() {
    [[ -x /usr/bin/chromium ]] || apt_install chromium
    [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is still missing (apt-get install chromium)"
    if ! python3 -c 'import playwright.sync_api' 2>/dev/null; then
        log "pip install playwright into $(command -v python3)"
        # The Python package only: no `playwright install`, no browser download.
        python3 -m pip install -q playwright
    fi
    python3 -c 'import playwright.sync_api' 2>/dev/null ||
        die "could not install playwright for $(command -v python3)"
    log "using $(/usr/bin/chromium --version 2>/dev/null | head -1) with playwright for $(command -v python3)"
}

ensure_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust first (https://rustup.rs)"
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        command -v rustup >/dev/null || die "cargo fmt / cargo clippy missing and no rustup"
        log "rustup component add rustfmt clippy"
        rustup component add rustfmt clippy
    fi
}

FAILED=()
SUMMARY=()

# Runs one step; records its outcome and duration instead of stopping the script.
step() {
    local name=$1 start=$SECONDS status=0
    shift
    log "$name: $*"
    "$@" || status=$?
    local took=$((SECONDS - start))s
    if [[ $status -eq 0 ]]; then
        SUMMARY+=("ok      $name ($took)")
    else
        SUMMARY+=("FAILED  $name (exit $status, $took)")
        FAILED+=("$name")
        log "$name FAILED with exit status $status"
    fi
}

install_system_deps
ensure_redis_py
ensure_browser
ensure_rust

export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

step "format" cargo fmt --check
step "clippy" cargo clippy --all-targets -- -D warnings
step "build" cargo build
if cargo nextest --version >/dev/null 2>&1; then
    step "tests" cargo nextest run --no-fail-fast "$@"
else
    log "cargo-nextest not installed; falling back to cargo test"
    step "tests" cargo test --no-fail-fast --lib --bins --tests "$@"
fi
step "doctests" cargo test --doc
step "kubernetes manifests (offline)" scripts/validate-k8s.sh
step "fuzz" scripts/ci-fuzz.sh

log "summary:"
printf '    %s\n' "${SUMMARY[@]}" >&2
if [[ ${#FAILED[@]} -gt 0 ]]; then
    die "${#FAILED[@]} step(s) failed: ${FAILED[*]}"
fi
log "all steps passed"
