#!/usr/bin/env bash
# HTTP load bench of efgs-server on the memory store (results: docs/performance.md, "HTTP").
#
#   scripts/bench-http.sh                  # upload bench, then the download bench
#   scripts/bench-http.sh --download-only  # only the download bench (wrk vs nginx)
#   scripts/bench-http.sh --upload-only    # only the upload bench
#
# Upload: runs the http_load bench binary (release/bench profile) in its default mode: 8 clients
# over HTTP vs Gateway::upload in-process, keys/s and the ratio.
#
# Download: starts the bench binary in `serve-download` mode as its own process (memory store,
# one 5000-key DE batch, downloaded by FR), which writes the exact body of that download to a
# file; serves that file with a private nginx (own config in a temp dir, 127.0.0.1 only,
# `daemon off`, never the system service); runs `wrk --latency` with FR's identity headers
# against the gateway and against nginx; prints requests/s, p99 and the ratios, and the
# gateway's VmRSS (sampled while wrk runs) and VmHWM.
#
# nginx-light and wrk are installed from Debian when missing (root needed then).
# With UNCACHED=1 (default) a third run measures the `serve-download-uncached` mode (the download
# response cache turned off: keys read from the store and encoded on every request), the
# "before" of the cache (docs/adr/0011).
#
# EFGS_BENCH_AUDIT=off runs the download gateway without the audit trail (`audit.enabled =
# false`), to measure what waiting for each download's event costs (docs/performance.md).
#
# STORE=postgres runs the download gateways on a private PostgreSQL cluster
# (scripts/pg-test-cluster.sh, started and stopped here) instead of the memory store.
#
# Environment: STORE (memory), UNCACHED (1), ROUNDS (5, alternating gateway/nginx runs), WRK_THREADS (2), WRK_CONNECTIONS (16), WRK_DURATION (10s), NGINX_PORT (first port
# to try, 18080), GATEWAY_PORT (18090), HTTP_LOAD_BIN (an http_load bench binary built before:
# skips the build, e.g. to run the same binary with 8 and with 64 connections).
set -euo pipefail

cd "$(dirname "$0")/.."

MODE="${1:-all}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-16}"
WRK_DURATION="${WRK_DURATION:-10s}"
UNCACHED="${UNCACHED:-1}"
ROUNDS="${ROUNDS:-5}"
STORE="${STORE:-memory}"

log() { echo "bench-http: $*" >&2; }

free_port() {
    local p="$1"
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1))
    done
    echo "$p"
}

# --- build -------------------------------------------------------------------------------------
if [[ -n "${HTTP_LOAD_BIN:-}" ]]; then
    BIN="$HTTP_LOAD_BIN"
else
    log "building the http_load bench (bench profile)"
    BIN="$(cargo build --profile bench -p efgs-testkit --bench http_load --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*http_load[^"]*"' | tail -1 | sed 's/"executable":"\(.*\)"/\1/')"
fi
if [[ -z "$BIN" || ! -x "$BIN" ]]; then
    log "could not build or find the http_load bench binary"
    exit 1
fi
log "binary: $BIN"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- upload ------------------------------------------------------------------------------------
if [[ "$MODE" != "--download-only" ]]; then
    echo
    echo "== upload =="
    "$BIN" upload
fi
[[ "$MODE" == "--upload-only" ]] && exit 0

# --- download ----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    log "installing nginx-light and wrk from Debian"
    if [[ $(id -u) -ne 0 ]]; then
        log "not root: install nginx-light and wrk first"
        exit 1
    fi
    # policy-rc.d (as Debian containers have it) keeps the system nginx service from starting.
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light wrk >&2
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

WORK="$(mktemp -d /tmp/efgs-bench-http.XXXXXX)"
chmod 755 "$WORK" # nginx workers (user nobody) read the file
GW_PID=""
NGINX_PID=""
UNCACHED_PID=""
PG_STARTED=""
cleanup() {
    [[ -n "$GW_PID" ]] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
    [[ -n "$UNCACHED_PID" ]] && kill "$UNCACHED_PID" 2>/dev/null && wait "$UNCACHED_PID" 2>/dev/null
    [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    [[ -n "$PG_STARTED" ]] && scripts/pg-test-cluster.sh stop >&2
    rm -rf "$WORK"
}
trap cleanup EXIT
if [[ "$STORE" == "postgres" ]]; then
    eval "$(scripts/pg-test-cluster.sh start)"
    PG_STARTED=1
    export EFGS_TEST_DATABASE_URL EFGS_BENCH_STORE=postgres
    echo "store: PostgreSQL (private cluster, $(psql --version 2>/dev/null | head -1))"
else
    echo "store: memory"
fi

echo
echo "== download =="
BODY="$WORK/batch.bin"
GATEWAY_PORT="$(free_port "${GATEWAY_PORT:-18090}")"
EFGS_BENCH_PORT="$GATEWAY_PORT" "$BIN" serve-download "$BODY" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
GW_PID=$!
for _ in $(seq 1 600); do
    grep -q '^READY' "$WORK/gateway.out" 2>/dev/null && break
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        log "the gateway exited:"; cat "$WORK/gateway.err" >&2; exit 1
    fi
    sleep 0.1
done
grep -q '^READY' "$WORK/gateway.out" || { log "the gateway did not get ready"; exit 1; }
val() { grep "^$1=" "$WORK/gateway.out" | head -1 | cut -d= -f2-; }
URL="$(val URL)"
THUMBPRINT="$(val THUMBPRINT)"
DN="$(val DN)"
ACCEPT="$(val ACCEPT)"
echo "gateway: pid $GW_PID, $(val KEYS) keys, body $(val BYTES) bytes ($(stat -c %s "$BODY") in $BODY)"
echo "URL: $URL"
echo "headers: X-SSL-Client-SHA256: $THUMBPRINT | X-SSL-Client-DN: $DN | Accept: $ACCEPT"

NGINX_PORT="$(free_port "${NGINX_PORT:-18080}")"
mkdir -p "$WORK/nginx-tmp"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx-tmp;
    default_type application/protobuf;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /batch.bin { root $WORK; }
    }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2>"$WORK/nginx.stderr" &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT/batch.bin"
for _ in $(seq 1 50); do
    curl -sf -o /dev/null "$NGINX_URL" 2>/dev/null && break
    sleep 0.1
done

# Both answer with the same bytes?
curl -sf -o "$WORK/gw.bin" -H "X-SSL-Client-SHA256: $THUMBPRINT" -H "X-SSL-Client-DN: $DN" \
    -H "Accept: $ACCEPT" "$URL"
curl -sf -o "$WORK/nginx.bin" "$NGINX_URL"
cmp -s "$WORK/gw.bin" "$BODY" || { log "gateway body differs from the saved body"; exit 1; }
cmp -s "$WORK/nginx.bin" "$BODY" || { log "nginx body differs from the saved body"; exit 1; }
echo "both serve the same $(stat -c %s "$BODY") bytes"

rss_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$GW_PID/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"; }
# CPU ticks of nginx's master and workers.
nginx_ticks() {
    local t=0 p
    for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID"); do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# wrk output -> "requests/s p99_ms"
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return v
        }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx/ { bad = $NF }
        END { printf "%s %s %s\n", rps, p99, (bad == "" ? 0 : bad) }
    ' "$1"
}

run_wrk() { # name url [headers...]
    local name="$1" url="$2"
    shift 2
    wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$WRK_DURATION" --latency "$@" "$url" >"$WORK/wrk-$name.out"
}

# Short warm-up of both.
wrk -t1 -c4 -d2s -H "X-SSL-Client-SHA256: $THUMBPRINT" -H "X-SSL-Client-DN: $DN" -H "Accept: $ACCEPT" "$URL" >/dev/null
wrk -t1 -c4 -d2s "$NGINX_URL" >/dev/null

# ROUNDS alternating runs of each (gateway, nginx, gateway, nginx, ...): the p99 of both moves
# with whatever else the 2 CPUs do, so the ratios are taken of the medians over the rounds.
RSS_BEFORE="$(rss_kb VmRSS)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
RSS_MAX=0
GW_CPU_SECS=0
: >"$WORK/rounds.txt"
for round in $(seq 1 "$ROUNDS"); do
    TICKS_BEFORE="$(cpu_ticks)"
    run_wrk "gateway-$round" "$URL" -H "X-SSL-Client-SHA256: $THUMBPRINT" -H "X-SSL-Client-DN: $DN" -H "Accept: $ACCEPT" &
    WRK_PID=$!
    while kill -0 "$WRK_PID" 2>/dev/null; do
        r="$(rss_kb VmRSS)"
        ((r > RSS_MAX)) && RSS_MAX="$r"
        sleep 0.25
    done
    wait "$WRK_PID"
    TICKS_AFTER="$(cpu_ticks)"
    NG_TICKS_BEFORE="$(nginx_ticks)"
    run_wrk "nginx-$round" "$NGINX_URL"
    NG_TICKS_AFTER="$(nginx_ticks)"
    read -r GW_RPS GW_P99 GW_BAD < <(parse_wrk "$WORK/wrk-gateway-$round.out")
    read -r NG_RPS NG_P99 NG_BAD < <(parse_wrk "$WORK/wrk-nginx-$round.out")
    echo "$round $GW_RPS $GW_P99 $GW_BAD $NG_RPS $NG_P99 $NG_BAD $((TICKS_AFTER - TICKS_BEFORE)) $((NG_TICKS_AFTER - NG_TICKS_BEFORE))" >>"$WORK/rounds.txt"
done
RSS_AFTER="$(rss_kb VmRSS)"
HWM="$(rss_kb VmHWM)"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "--- wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --latency: gateway, round 1 ---"
cat "$WORK/wrk-gateway-1.out"
echo "--- wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --latency: nginx, round 1 ---"
cat "$WORK/wrk-nginx-1.out"
echo
HZ="$(getconf CLK_TCK)"
awk -v hz="$HZ" -v dur="$WRK_DURATION" '
    function median(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    BEGIN { secs = dur; sub(/s$/, "", secs); printf "download of the 5000-key batch (%s s per run):\n", secs }
    {
        n++; grps[n] = $2; gp99[n] = $3; nrps[n] = $5; np99[n] = $6; bad += $4 + $7
        cpu = $8 / hz; ncpu = $9 / hz
        printf "  round %d: gateway %9.1f req/s p99 %6.2f ms (%.2f cores, %.0f us CPU per request) | nginx %9.1f req/s p99 %6.2f ms (%.2f cores, %.0f us) | ratios %.2f, p99 %.2f\n",
            $1, $2, $3, cpu / secs, cpu / ($2 * secs) * 1e6, $5, $6, ncpu / secs, ncpu / ($5 * secs) * 1e6, $2 / $5, $6 / $3
    }
    END {
        g = median(grps, n); gp = median(gp99, n); r = median(nrps, n); rp = median(np99, n)
        printf "  median : gateway %9.1f req/s p99 %6.2f ms | nginx %9.1f req/s p99 %6.2f ms | non-2xx %d\n", g, gp, r, rp, bad
        printf "  ratio gateway/nginx (medians): requests/s %.2f (issue 12 target >= 0.80); p99 nginx/gateway %.2f\n", g / r, rp / gp
    }' "$WORK/rounds.txt"
echo "gateway memory: VmRSS before load $((RSS_BEFORE / 1024)) MB, max sampled under load $((RSS_MAX / 1024)) MB, after $((RSS_AFTER / 1024)) MB; VmHWM $((HWM / 1024)) MB (issue 12 target <= 64 MB + download.cache_max_bytes, 64 MiB by default)"
echo "load average: before $LOAD_BEFORE, after $LOAD_END (wrk, the gateway and nginx share the $(nproc) CPUs)"
NG_RPS="$(awk '{ print $5 }' "$WORK/rounds.txt" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"

if [[ "$UNCACHED" == "1" ]]; then
    kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
    GW_PID=""
    UNCACHED_PORT="$(free_port "$((GATEWAY_PORT + 1))")"
    EFGS_BENCH_PORT="$UNCACHED_PORT" "$BIN" serve-download-uncached "$WORK/uncached.bin" \
        >"$WORK/uncached.out" 2>"$WORK/uncached.err" &
    UNCACHED_PID=$!
    for _ in $(seq 1 600); do
        grep -q '^READY' "$WORK/uncached.out" 2>/dev/null && break
        kill -0 "$UNCACHED_PID" 2>/dev/null || { log "the uncached gateway exited"; cat "$WORK/uncached.err" >&2; exit 1; }
        sleep 0.1
    done
    uval() { grep "^$1=" "$WORK/uncached.out" | head -1 | cut -d= -f2-; }
    U_URL="$(uval URL)"; U_T="$(uval THUMBPRINT)"; U_DN="$(uval DN)"
    curl -sf -o "$WORK/uncached-gw.bin" -H "X-SSL-Client-SHA256: $U_T" -H "X-SSL-Client-DN: $U_DN" \
        -H "Accept: $ACCEPT" "$U_URL"
    cmp -s "$WORK/uncached-gw.bin" "$WORK/uncached.bin" || { log "uncached body differs"; exit 1; }
    wrk -t1 -c4 -d2s -H "X-SSL-Client-SHA256: $U_T" -H "X-SSL-Client-DN: $U_DN" -H "Accept: $ACCEPT" "$U_URL" >/dev/null
    run_wrk uncached "$U_URL" -H "X-SSL-Client-SHA256: $U_T" -H "X-SSL-Client-DN: $U_DN" -H "Accept: $ACCEPT"
    read -r U_RPS U_P99 U_BAD < <(parse_wrk "$WORK/wrk-uncached.out")
    echo
    echo "before (serve-download-uncached: download.cache_max_bytes = 0, keys read and encoded per request):"
    awk -v c="$U_RPS" -v p="$U_P99" -v b="$U_BAD" -v n="$NG_RPS" 'BEGIN {
        printf "  %10.1f requests/s  p99 %8.2f ms  non-2xx %s  ratio to nginx %.2f\n", c, p, b, c / n }'
    echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
