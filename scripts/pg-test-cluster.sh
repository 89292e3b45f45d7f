#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for the efgs-store-postgres tests and benches.
#
#   scripts/pg-test-cluster.sh start   # install (if needed), initdb, start; prints `export ...` lines
#   scripts/pg-test-cluster.sh env     # prints the `export ...` lines of the running cluster
#   scripts/pg-test-cluster.sh status  # exit 0 when the cluster answers, 1 otherwise
#   scripts/pg-test-cluster.sh stop    # fast shutdown and removal of the cluster directory
#   scripts/pg-test-cluster.sh halt    # fast shutdown, keeping the cluster (a database outage)
#   scripts/pg-test-cluster.sh resume  # starts a halted cluster again on the same port
#
# Typical use (e.g. in .ci/run):
#   trap 'bash scripts/pg-test-cluster.sh stop' EXIT
#   eval "$(bash scripts/pg-test-cluster.sh start)"
#   cargo test ...            # sees EFGS_TEST_DATABASE_URL
#
# Only the `export` lines go to stdout; progress and errors go to stderr. `start` on a running
# cluster just prints its exports again; `stop` without a cluster does nothing (exit 0). Both are
# safe to call from an EXIT trap, and `stop` never fails the caller's exit status.
#
# Environment (all optional):
#   EFGS_PG_STATE_FILE  where the running cluster is recorded (default: /tmp/efgs-pg-test-cluster.state)
#   EFGS_PG_PORT        first port to try (default 55432; the next free one up to +50 is used)
#   EFGS_PG_BIN         directory holding initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
#
# Connections are trusted, except to the database `efgs_password`, which requires a password
# (SCRAM) from every user: tests of the password settings use it. TLS is on (ssl=on) with a
# throw-away CA whose certificate is exported as EFGS_TEST_DATABASE_CA; clients may use it or not.
#
# The cluster trusts every local connection (--auth=trust), listens on 127.0.0.1 only, keeps its
# unix socket in its own directory, and runs with fsync off (EFGS_PG_DURABLE=1: on, as in
# production, for benchmarks): it is for tests and benches only.
# When run as root the server runs as the `postgres` user (initdb refuses root).
set -euo pipefail

STATE_FILE="${EFGS_PG_STATE_FILE:-/tmp/efgs-pg-test-cluster.state}"
FIRST_PORT="${EFGS_PG_PORT:-55432}"

log() { echo "pg-test-cluster: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

find_bin() {
    if [[ -n "${EFGS_PG_BIN:-}" ]]; then
        [[ -x "$EFGS_PG_BIN/initdb" ]] || return 1
        echo "$EFGS_PG_BIN"
        return 0
    fi
    local d best
    # The glob sorts lexically; prefer the highest major version numerically.
    best="$(for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && echo "$d"
    done | sort -t/ -k5,5n | tail -n1)"
    [[ -n "$best" ]] || return 1
    echo "$best"
}

install_postgres() {
    [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed and installing it needs root"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is unavailable"
    log "installing PostgreSQL from Debian packages"
    # Do not let the package start a system cluster of its own (no service manager here anyway).
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    } >&2 || rc=$?
    [[ "$created_policy" -eq 1 ]] && rm -f "$policy"
    [[ "$rc" -eq 0 ]] || die "apt-get install postgresql failed (exit $rc)"
}

# Runs a command as the cluster owner (from /, which the owner can always enter).
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

port_free() {
    # A successful connect means someone listens there.
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

print_env() {
    echo "export EFGS_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:${PG_PORT}/postgres'"
    echo "export EFGS_PG_TEST_DIR='${PG_DIR}'"
    echo "export EFGS_TEST_DATABASE_CA='${PG_DIR}/tls/ca.pem'"
}

load_state() {
    [[ -f "$STATE_FILE" ]] || return 1
    PG_DIR="" PG_PORT="" PG_BIN_DIR=""
    # shellcheck disable=SC1090
    source "$STATE_FILE"
    [[ -n "$PG_DIR" && -n "$PG_PORT" && -n "$PG_BIN_DIR" ]]
}

# The recorded cluster runs and answers (a stale postmaster.pid whose PID was reused by
# another process must not count as running).
running() {
    load_state || return 1
    [[ -d "$PG_DIR/data" ]] || return 1
    as_owner "$PG_BIN_DIR/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1 || return 1
    "$PG_BIN_DIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 5 >/dev/null 2>&1
}

cmd_start() {
    if running; then
        log "already running on port $PG_PORT ($PG_DIR)"
        print_env
        return 0
    fi
    # A stale state file (cluster died or was removed): clean up what is left.
    if load_state; then
        log "removing stale cluster state ($PG_DIR)"
        rm -rf -- "$PG_DIR"
        rm -f -- "$STATE_FILE"
    fi

    local bin
    if ! bin="$(find_bin)"; then
        install_postgres
        bin="$(find_bin)" || die "initdb not found after installing PostgreSQL"
    fi
    if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        die "user 'postgres' does not exist (install the postgresql package)"
    fi

    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/efgs-pg.XXXXXX")"
    chmod 755 "$dir"
    [[ "$(id -u)" -eq 0 ]] && chown postgres: "$dir"
    log "initdb in $dir ($bin)"
    if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        rm -rf -- "$dir"
        die "initdb failed"
    fi

    # Connections to the database `efgs_password` must give a password (SCRAM), whoever the
    # user: the tests of `database.password_file` connect there with a role of their own.
    # Every other connection is trusted.
    as_owner sh -c "{ printf 'host efgs_password all 127.0.0.1/32 scram-sha-256\n'; \
cat '$dir/data/pg_hba.conf'; } > '$dir/data/pg_hba.new' && mv '$dir/data/pg_hba.new' '$dir/data/pg_hba.conf'"

    # TLS: a throw-away CA and a server certificate for 127.0.0.1/localhost, so tests can
    # connect with sslmode verify-full (EFGS_TEST_DATABASE_CA) and see a wrong CA refused.
    command -v openssl >/dev/null || die "openssl is needed for the test cluster's TLS certificate"
    mkdir -p "$dir/tls"
    {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=efgs test database CA" -keyout "$dir/tls/ca.key" -out "$dir/tls/ca.pem" &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                -subj "/CN=127.0.0.1" -keyout "$dir/tls/server.key" -out "$dir/tls/server.csr" &&
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
                >"$dir/tls/server.ext" &&
            openssl x509 -req -in "$dir/tls/server.csr" -CA "$dir/tls/ca.pem" -CAkey "$dir/tls/ca.key" \
                -CAcreateserial -days 30 -extfile "$dir/tls/server.ext" -out "$dir/tls/server.pem"
    } >"$dir/tls/openssl.log" 2>&1 || {
        cat "$dir/tls/openssl.log" >&2
        die "could not make the test cluster's TLS certificate"
    }
    chmod 600 "$dir/tls/server.key" "$dir/tls/ca.key"
    chmod 644 "$dir/tls/ca.pem" "$dir/tls/server.pem"
    [[ "$(id -u)" -eq 0 ]] && chown -R postgres: "$dir/tls"

    local port="$FIRST_PORT" last=$((FIRST_PORT + 50)) started=0
    while [[ "$port" -le "$last" ]]; do
        if port_free "$port"; then
            if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
                -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $(durability) \
-c max_connections=200 -c ssl=on \
-c ssl_cert_file=$dir/tls/server.pem -c ssl_key_file=$dir/tls/server.key" \
                start >&2; then
                started=1
                break
            fi
            log "start on port $port failed; trying the next one"
        fi
        port=$((port + 1))
    done
    if [[ "$started" -ne 1 ]]; then
        tail -n 30 "$dir/server.log" >&2 || true
        rm -rf -- "$dir"
        die "could not start PostgreSQL on any port in $FIRST_PORT..$last"
    fi

    PG_DIR="$dir" PG_PORT="$port" PG_BIN_DIR="$bin"
    printf 'PG_DIR=%q\nPG_PORT=%q\nPG_BIN_DIR=%q\n' "$PG_DIR" "$PG_PORT" "$PG_BIN_DIR" >"$STATE_FILE"
    log "running on 127.0.0.1:$port"
    print_env
}

cmd_stop() {
    if ! load_state; then
        log "no cluster recorded; nothing to stop"
        return 0
    fi
    if [[ -d "$PG_DIR/data" ]]; then
        as_owner "$PG_BIN_DIR/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >&2 ||
            log "pg_ctl stop reported failure (server not running?)"
    fi
    rm -rf -- "$PG_DIR"
    rm -f -- "$STATE_FILE"
    log "stopped and removed $PG_DIR"
}

# fsync off for tests; EFGS_PG_DURABLE=1 runs the cluster as production does (fsync,
# synchronous_commit and full_page_writes on), for benchmarks whose goal is stated for that.
durability() {
    if [[ "${EFGS_PG_DURABLE:-}" == 1 ]]; then
        echo "-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
    else
        echo "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
}

cmd_halt() {
    load_state || die "no cluster recorded"
    as_owner "$PG_BIN_DIR/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >&2
}

cmd_resume() {
    load_state || die "no cluster recorded"
    local dir="$PG_DIR"
    as_owner "$PG_BIN_DIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 $(durability) \
-c max_connections=200 -c ssl=on \
-c ssl_cert_file=$dir/tls/server.pem -c ssl_key_file=$dir/tls/server.key" \
        start >&2
}

cmd_env() {
    running || die "no running cluster (run: $0 start)"
    print_env
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop || true ;;
env) cmd_env ;;
status) running ;;
halt) cmd_halt ;;
resume) cmd_resume ;;
*)
    echo "usage: $0 start|stop|env|status|halt|resume" >&2
    exit 2
    ;;
esac
