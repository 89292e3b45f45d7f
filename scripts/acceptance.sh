#!/usr/bin/env bash
# The acceptance test run of a release: runs the suites and writes the dated report
# docs/reports/acceptance-YYYY-MM-DD.md (results, versions, machine). One command:
#
#   scripts/acceptance.sh            # about 30-60 minutes on 2 vCPUs, most of it compiling
#
# Suites: unit (library, binary and doc tests), storage conformance (memory and PostgreSQL),
# HTTP (the real server on loopback), penetration, the documents' consistency test, benchmarks
# in short form (efgs-core upload pipeline, HTTP upload), efgs-sim in short form (the demo
# federation, a scale run in process and one over HTTP into PostgreSQL with two instances).
# PostgreSQL: a private throw-away cluster, as scripts/test-all.sh starts it (EFGS_PG_PORT /
# EFGS_PG_STATE_FILE choose its port and state file). The Debian package check is part of
# scripts/test-all.sh (CI), not of this report. Exit status: 0 when every suite passed.
set -uo pipefail
cd "$(dirname "$0")/.."

date=$(date -u +%Y-%m-%d)
# The revision under test, taken before anything is built.
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -v '^?? docs/reports/' | head -n1)
report=${ACCEPTANCE_REPORT:-docs/reports/acceptance-$date.md}
log_dir=$(mktemp -d)
cleanup() {
    scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true
    rm -rf "$log_dir"
}
trap cleanup EXIT
trap 'echo "acceptance: interrupted; no report written" >&2; exit 130' INT TERM

eval "$(scripts/pg-test-cluster.sh start)" || { echo "acceptance: no PostgreSQL cluster" >&2; exit 1; }
export EFGS_TEST_DATABASE_URL EFGS_REQUIRE_POSTGRES=1
pg_version=$(psql "$EFGS_TEST_DATABASE_URL" -Atc 'show server_version' 2>/dev/null || echo unknown)

rows=()
failed=0
# run NAME COMMAND...: runs a suite, records its result, duration and test counts.
run() {
    local name=$1; shift
    local log="$log_dir/$name.log" start end status passed fails ignored
    echo "== $name: $*"
    start=$(date +%s)
    "$@" >"$log" 2>&1
    status=$?
    end=$(date +%s)
    passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
    fails=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
    ignored=$(grep -oE '[0-9]+ ignored' "$log" | awk '{s+=$1} END {print s+0}')
    local result=passed
    [ "$status" -eq 0 ] || { result="**FAILED** (exit $status)"; failed=1; }
    rows+=("| $name | \`$*\` | $result | $passed | $fails | $ignored | $((end - start)) s |")
    echo "   $result: $passed passed, $fails failed, $ignored ignored, $((end - start)) s"
    [ "$status" -eq 0 ] || tail -n 40 "$log"
}

run unit cargo test --workspace --locked --lib --bins
run doc-tests cargo test --workspace --locked --doc
run conformance cargo test --locked -p efgs-store-memory -p efgs-store-postgres
run core-rules cargo test --locked -p efgs-core --tests
run http cargo test --locked -p efgs-testkit --test 'http_*' --test database_tls \
    --test revocation --test secrets --test serve_command --test trust_list_command
run server-cli cargo test --locked -p efgs-server --tests
run penetration cargo test --locked -p efgs-testkit --test 'pen_*'
run bench-pipeline cargo bench --locked -p efgs-core --bench pipeline -- \
    --warm-up-time 1 --measurement-time 2 upload_5000/end_to_end
EFGS_BENCH_ROUNDS=1 EFGS_BENCH_UPLOADS=5 \
    run bench-http-upload cargo bench --locked -p efgs-testkit --bench http_load -- upload
run efgs-sim-demo cargo run --locked -p efgs-testkit --bin efgs-sim -- demo --rounds 3
# efgs-sim scale in short form (the full runs: docs/performance.md, "Federation simulations"):
# in process, 10 countries x 2 virtual days; over HTTP, 10 countries for 10 s into PostgreSQL
# through two gateway instances. Each exits non-zero on any lost or doubled key (its ledgers).
run efgs-sim-in-process cargo run --locked -p efgs-testkit --bin efgs-sim -- run --quiet \
    --countries 10 --days 2 --keys-per-day 5000 --out "$log_dir/sim-in-process"
run efgs-sim-http-postgres cargo run --locked -p efgs-testkit --bin efgs-sim -- run --quiet \
    --serve postgres --instances 2 --database-url "$EFGS_TEST_DATABASE_URL" \
    --countries 10 --duration-secs 10 --out "$log_dir/sim-http-postgres"

mem=$(grep -cE '^test memory::.* \.\.\. ok$' "$log_dir/conformance.log" || true)
pg=$(grep -cE '^test postgres::.* \.\.\. ok$' "$log_dir/conformance.log" || true)
e2e=$(grep -A2 'upload_5000/end_to_end' "$log_dir/bench-pipeline.log" | grep -oE 'time: +\[[^]]*\]' | head -n1)
e2e_thrpt=$(grep -A3 'upload_5000/end_to_end' "$log_dir/bench-pipeline.log" | grep -oE 'thrpt: +\[[^]]*\]' | head -n1)
http_lines=$(sed -n '/^all rounds:/,$p' "$log_dir/bench-http-upload.log" | sed 's/^/    /')
demo_tail=$(tail -n 12 "$log_dir/efgs-sim-demo.log" | sed 's/^/    /')
sim_report() { if [ -f "$1/report.txt" ]; then sed 's/^/    /' "$1/report.txt" | tail -n 40; else echo "    (no report: see the suite's result)"; fi; }

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
mkdir -p "$(dirname "$report")"
{
    echo "# Acceptance test report: efgs-rs $version, $date"
    echo
    echo "Produced by \`scripts/acceptance.sh\` (one command; see docs/runbook.md, \"Making a release\")."
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| version | $version (git $revision${dirty:+, with uncommitted changes}) |"
    echo "| date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
    echo "| result | $([ "$failed" = 0 ] && echo "**all suites passed**" || echo "**FAILED**: see the table") |"
    echo "| toolchain | $(rustc --version), $(cargo --version) |"
    echo "| PostgreSQL | $pg_version (private test cluster on 127.0.0.1, \`scripts/pg-test-cluster.sh\`) |"
    echo "| machine | $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) vCPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB memory |"
    echo "| OS | $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r) |"
    echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; timings are pessimistic) |"
    echo
    echo "## Suites"
    echo
    echo "| suite | command | result | passed | failed | ignored | time |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Conformance: memory:: $mem passed, postgres:: $pg passed (the two backends run the same cases)."
    echo "Ignored tests are documented in their source (known limits, or cases that need the network)."
    echo
    echo "## Benchmarks (short form)"
    echo
    echo "Full runs and their targets: docs/performance.md. Short runs on a shared machine show the"
    echo "order of magnitude, not the figure of record."
    echo
    echo "- efgs-core upload pipeline, one 5000-key batch of the realistic profile, end to end: time $e2e, $e2e_thrpt (goal: >= 1,000,000 keys/s on one core, i.e. <= 5 ms)"
    echo "- HTTP upload (\`http_load upload\`, 1 round, 5 uploads per client):"
    echo
    echo "$http_lines"
    echo
    echo "## efgs-sim (short form: the demo federation, 3 rounds)"
    echo
    echo "$demo_tail"
    echo
    echo "## efgs-sim scale (short form)"
    echo
    echo "In process, 10 countries x 2 virtual days x 5,000 keys per country per day:"
    echo
    sim_report "$log_dir/sim-in-process"
    echo
    echo "Over HTTP into PostgreSQL through two gateway instances, 10 countries for 10 s:"
    echo
    sim_report "$log_dir/sim-http-postgres"
} > "$report"
echo "== report: $report"
exit "$failed"
