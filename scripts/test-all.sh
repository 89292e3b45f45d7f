#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
# Needs only the Rust toolchain: PostgreSQL is installed from Debian's packages when missing
# and a private throw-away cluster is started for the run and stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."

log_dir=$(mktemp -d)
cleanup() {
    scripts/pg-test-cluster.sh stop || true
    rm -rf "$log_dir"
}
trap cleanup EXIT INT TERM

echo "== PostgreSQL test cluster"
eval "$(scripts/pg-test-cluster.sh start)"
export EFGS_TEST_DATABASE_URL EFGS_REQUIRE_POSTGRES=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fuzz targets compile (running them needs nightly: fuzz/README.md)"
cargo check --manifest-path fuzz/Cargo.toml --locked --quiet

echo "== cargo deny (licences, bans, sources; advisories need the network: run them by hand)"
if ! command -v cargo-deny >/dev/null; then
    cargo install --locked --quiet cargo-deny --version 0.20.2
fi
# cargo-deny reads every platform's crates in Cargo.lock (wasm-bindgen, windows-sys, ...); the
# builds above fetched only this platform's. Without --target, cargo fetch gets them all.
cargo fetch --locked
cargo deny --offline check licenses bans sources

echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log_dir/test.log"
status=${PIPESTATUS[0]}

pg=$(grep -cE '^test postgres::.* \.\.\. ok$' "$log_dir/test.log" || true)
mem=$(grep -cE '^test memory::.* \.\.\. ok$' "$log_dir/test.log" || true)
echo "== conformance: memory:: ${mem} passed, postgres:: ${pg} passed"
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ "$pg" -eq 0 ] || [ "$pg" -ne "$mem" ]; then
    echo "postgres:: and memory:: conformance counts differ (or no PostgreSQL test ran)" >&2
    exit 1
fi

echo "== Debian package (install, start, check, stop, remove; needs root)"
scripts/check-deb.sh
