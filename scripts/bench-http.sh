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
# Environment: UNCACHED (1), WRK_THREADS (2), WRK_CONNECTIONS (16), WRK_DURATION (10s), NGINX_PORT (first port
# to try, 18080), GATEWAY_PORT (18090).
set -euo pipefail

cd "$(dirname "$0")/.."

MODE="${1:-all}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-16}"
WRK_DURATION="${WRK_DURATION:-10s}"
UNCACHED="${UNCACHED:-1}"

log() { echo "bench-http: $*" >&2; }

free_port() {
    local p="$1"
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1))
    done
    echo "$p"
}

# --- build -------------------------------------------------------------------------------------
log "building the http_load bench (bench profile)"
BIN="$(cargo build --profile bench -p efgs-server --bench http_load --message-format=json 2>/dev/null |
    grep -o '"executable":"[^"]*http_load[^"]*"' | tail -1 | sed 's/"executable":"\(.*\)"/\1/')"
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
cleanup() {
    [[ -n "$GW_PID" ]] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
    [[ -n "$UNCACHED_PID" ]] && kill "$UNCACHED_PID" 2>/dev/null && wait "$UNCACHED_PID" 2>/dev/null
    [[ -n "$NGINX_PID" ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

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

RSS_BEFORE="$(rss_kb VmRSS)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
TICKS_BEFORE="$(cpu_ticks)"
run_wrk gateway "$URL" -H "X-SSL-Client-SHA256: $THUMBPRINT" -H "X-SSL-Client-DN: $DN" -H "Accept: $ACCEPT" &
WRK_PID=$!
RSS_MAX=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    r="$(rss_kb VmRSS)"
    ((r > RSS_MAX)) && RSS_MAX="$r"
    sleep 0.25
done
wait "$WRK_PID"
TICKS_AFTER="$(cpu_ticks)"
RSS_AFTER="$(rss_kb VmRSS)"
HWM="$(rss_kb VmHWM)"
LOAD_GW="$(cut -d' ' -f1-3 /proc/loadavg)"
run_wrk nginx "$NGINX_URL"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

read -r GW_RPS GW_P99 GW_BAD < <(parse_wrk "$WORK/wrk-gateway.out")
read -r NG_RPS NG_P99 NG_BAD < <(parse_wrk "$WORK/wrk-nginx.out")

echo
echo "--- wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --latency: gateway ---"
cat "$WORK/wrk-gateway.out"
echo "--- wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --latency: nginx ---"
cat "$WORK/wrk-nginx.out"
echo
HZ="$(getconf CLK_TCK)"
awk -v grps="$GW_RPS" -v gp99="$GW_P99" -v nrps="$NG_RPS" -v np99="$NG_P99" \
    -v gbad="$GW_BAD" -v nbad="$NG_BAD" -v t0="$TICKS_BEFORE" -v t1="$TICKS_AFTER" -v hz="$HZ" \
    -v dur="$WRK_DURATION" 'BEGIN {
    secs = dur; sub(/s$/, "", secs)
    cpu = (t1 - t0) / hz
    printf "download of the 5000-key batch:\n"
    printf "  gateway: %10.1f requests/s  p99 %8.2f ms  non-2xx %s  (gateway CPU %.1f s in %s s = %.2f cores, %.0f us per request)\n", grps, gp99, gbad, cpu, secs, cpu / secs, cpu / (grps * secs) * 1e6
    printf "  nginx  : %10.1f requests/s  p99 %8.2f ms  non-2xx %s\n", nrps, np99, nbad
    printf "  ratio gateway/nginx: requests/s %.2f (target >= 0.50); p99 nginx/gateway %.2f\n", grps / nrps, np99 / gp99
}'
echo "gateway memory: VmRSS before load $((RSS_BEFORE / 1024)) MB, max sampled under load $((RSS_MAX / 1024)) MB, after $((RSS_AFTER / 1024)) MB; VmHWM $((HWM / 1024)) MB (target <= 150 MB)"
echo "load average: before $LOAD_BEFORE, after gateway run $LOAD_GW, after nginx run $LOAD_END (wrk, the gateway and nginx share the $(nproc) CPUs)"

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
