#!/usr/bin/env bash
# Installs the Debian package, starts the packaged service, checks that it answers, stops it
# and removes the package (scripts/test-all.sh runs this in CI).
#
#   scripts/check-deb.sh [--binary PATH]   # default: the debug binary the test suite built
#
# Needs root (dpkg, the service user). As another user it skips with a message; with CI=true it
# fails instead. systemd does not run in CI containers, so the service is started the way its
# unit starts it: the unit's ExecStart, as the unit's User/Group with no new privileges, its
# EnvironmentFile, UMask and WorkingDirectory, inside the unit's file-system sandbox rebuilt
# in a private mount namespace (unshare): ProtectSystem=strict (every mount read-only but the
# kernel's API file systems), StateDirectory= (the only writable path), PrivateTmp= and
# ProtectHome=; the check then proves from inside that namespace, as the service user, that
# the state directory is writable and /etc, /usr and /var are not. What this does NOT
# exercise: systemd's other options (SystemCallFilter, Protect*Kernel*, ...); `systemd-analyze
# verify` checks the unit's syntax when it is installed. See docs/runbook.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "check-deb: CI=true but not running as root: the package check cannot run" >&2
        exit 1
    fi
    echo "== Debian package: skipped (needs root for dpkg and the service user; run as root to check it)"
    exit 0
fi
binary=${CARGO_TARGET_DIR:-target}/debug/efgs-server
[ "${1:-}" = --binary ] && binary=$2
if [ ! -x "$binary" ]; then
    cargo build --locked -p efgs-server --bin efgs-server
fi

work=$(mktemp -d)
pid=""
user_existed=0
getent passwd efgs >/dev/null && user_existed=1
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    dpkg --purge efgs-server >/dev/null 2>&1 || true
    rm -rf /etc/efgs/secrets /etc/efgs/trust-anchor.pem /var/lib/efgs-check-probe
    rmdir /etc/efgs 2>/dev/null || true
    [ "$user_existed" = 1 ] || userdel efgs 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if dpkg -s efgs-server >/dev/null 2>&1; then
    echo "check-deb: efgs-server is already installed on this machine; not touching it" >&2
    trap - EXIT; rm -rf "$work"; exit 1
fi

deb=$(scripts/package-deb.sh --binary "$binary" --out "$work" --compression none | tail -n1)
echo "== Debian package: $(basename "$deb")"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Description\):/  \1:/p'
dpkg -i "$deb" >/dev/null
unit=/lib/systemd/system/efgs-server.service
for f in /usr/bin/efgs-server "$unit" /etc/efgs/efgs-server.toml /etc/default/efgs-server; do
    [ -e "$f" ] || { echo "check-deb: $f not installed" >&2; exit 1; }
done
getent passwd efgs >/dev/null || { echo "check-deb: user efgs not created" >&2; exit 1; }
if command -v systemd-analyze >/dev/null; then
    # Only this unit's own problems count (the container's other units are not ours).
    if ! systemd-analyze verify "$unit" 2>"$work/verify.txt"; then
        if grep -q 'efgs-server' "$work/verify.txt"; then cat "$work/verify.txt" >&2; exit 1; fi
    fi
    echo "  systemd-analyze verify: ok"
else
    echo "  systemd-analyze not installed: unit syntax not verified"
fi
/usr/bin/efgs-server --version

# What an operator provides before the first start (runbook.md, "Install"): the trust anchor
# and the secrets. The database is the test cluster (its own schema) when test-all.sh runs
# this; standalone, the memory store.
install -m 0644 efgs-core/tests/data/guide/trust_anchor.pem /etc/efgs/trust-anchor.pem
secrets=/etc/efgs/secrets
openssl rand -hex 32 > $secrets/encryption-1
openssl rand -hex 32 > $secrets/duplicate-hash
env_extra=()
if [ -n "${EFGS_TEST_DATABASE_URL:-}" ]; then
    printf '%s\n' "$EFGS_TEST_DATABASE_URL" > $secrets/database-url
    env_extra+=(EFGS_DATABASE_SCHEMA=efgs_deb_check)
    store=postgres
else
    : > $secrets/database-url
    env_extra+=(EFGS_STORAGE=memory EFGS_DATABASE_URL_FILE=)
    store=memory
fi
chown root:efgs $secrets/*; chmod 0640 $secrets/*

port=18090
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
metrics_port=$((port + 1))
while (exec 3<>"/dev/tcp/127.0.0.1/$metrics_port") 2>/dev/null; do metrics_port=$((metrics_port + 1)); done
# The unit's command line, user, environment file, umask and working directory.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
workdir=$(sed -n 's/^WorkingDirectory=//p' "$unit")
mapfile -t unit_env < <(grep -E '^EFGS_[A-Z_]+=' /etc/default/efgs-server || true)
install -d -o "$user" -g "$group" -m 0750 "$workdir"   # systemd's StateDirectory=
probe=/var/lib/efgs-check-probe                          # see the sandbox check below
install -d -o "$user" -g "$group" -m 0750 "$probe"
grep -qx 'ProtectSystem=strict' "$unit" && grep -qx 'PrivateTmp=yes' "$unit" \
    && grep -qx 'ProtectHome=yes' "$unit" && grep -qx 'StateDirectory=efgs' "$unit" \
    || { echo "check-deb: the unit's file-system sandbox is not the one this check rebuilds" >&2; exit 1; }
# The unit's file-system sandbox, run as root in a new mount namespace before dropping to the
# service user: ProtectSystem=strict, then StateDirectory= writable, PrivateTmp=, ProtectHome=.
# shellcheck disable=SC2016
sandbox='set -e
awk "{print \$5}" /proc/self/mountinfo | sort -u | while read -r m; do
    case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$m"
done
mount --bind "$STATE" "$STATE"; mount -o remount,bind,rw "$STATE"
for t in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$t"; done
for h in /home /root /run/user; do [ ! -d "$h" ] || mount -t tmpfs -o ro,mode=0755 tmpfs "$h"; done
exec "$@"'
(
    cd "$workdir"
    umask 0077
    # shellcheck disable=SC2086
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${unit_env[@]}" "${env_extra[@]}" \
        EFGS_LISTEN="127.0.0.1:$port" EFGS_METRICS_LISTEN="127.0.0.1:$metrics_port" \
        STATE="$workdir" unshare --mount --propagation private sh -c "$sandbox" sandbox \
        setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs $exec_start
) >"$work/out.log" 2>"$work/err.log" &
pid=$!
echo "  started as in $unit: $exec_start (user $user, store $store, port $port)"

# HTTP/1.1 request without curl (not every CI image has it): prints the status code, then the body.
# A third argument names another port (the metrics listener).
http() {
    local method=$1 path=$2 to=${3:-$port} response
    exec 3<>"/dev/tcp/127.0.0.1/$to" || return 1
    printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$method" "$path" >&3
    response=$(timeout 5 cat <&3 | tr -d '\r') || true
    exec 3<&-
    echo "$response" | head -n1 | awk '{print $2}'
    echo "$response" | sed '1,/^$/d'
}

answer=""
for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "check-deb: the service exited; its log:" >&2; cat "$work/err.log" >&2; exit 1
    fi
    if answer=$(http GET /healthz 2>/dev/null) && [ -n "$answer" ]; then break; fi
    sleep 0.2
done
[ "$(echo "$answer" | tr '\n' ' ')" = "200 ok " ] \
    || { echo "check-deb: GET /healthz answered '$answer'" >&2; cat "$work/err.log" >&2; exit 1; }
echo "  GET /healthz: 200 ok"
# Readiness as a load balancer asks it: the private metrics listener (metrics.listen).
answer=$(http GET /readyz "$metrics_port") || true
answer=${answer%%$'\n'*}
[ "$answer" = 200 ] || { echo "check-deb: GET /readyz on the metrics listener gave '$answer'" >&2; cat "$work/err.log" >&2; exit 1; }
echo "  GET /readyz (metrics listener, port $metrics_port): 200"
status=$(http OPTIONS /diagnosiskeys | head -n1)
[ "$status" = 200 ] || { echo "check-deb: OPTIONS /diagnosiskeys gave $status" >&2; exit 1; }
echo "  OPTIONS /diagnosiskeys: $status"
# The sandbox, seen from inside the service's mount namespace as the service user.
in_sandbox() { nsenter --target "$pid" --mount setpriv --reuid="$user" --regid="$group" --init-groups "$@"; }
in_sandbox sh -c "touch '$workdir/.probe' && rm '$workdir/.probe'" \
    || { echo "check-deb: the state directory $workdir is not writable in the sandbox" >&2; exit 1; }
# A directory the service user owns outside its state: writable to it without the sandbox.
if in_sandbox sh -c "touch '$probe/file'" 2>/dev/null; then
    echo "check-deb: $probe (owned by $user, outside the state) is writable in the sandbox" >&2; exit 1
fi
setpriv --reuid="$user" --regid="$group" --init-groups touch "$probe/file" \
    || { echo "check-deb: the probe directory is not writable even outside the sandbox" >&2; exit 1; }
[ -z "$(in_sandbox ls -A /tmp)" ] || { echo "check-deb: /tmp is not private in the sandbox" >&2; exit 1; }
echo "  file-system sandbox: read-only but $workdir; private /tmp (checked as $user from inside)"
runs_as=$(stat -c %U "/proc/$pid")
[ "$runs_as" = "$user" ] || { echo "check-deb: the service runs as $runs_as, not $user" >&2; exit 1; }
echo "  runs as: $runs_as, NoNewPrivs: $(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "/proc/$pid/status")"
version=$(/usr/bin/efgs-server --version | awk '{print $2}')
serving=$(grep -m1 '"serving"' "$work/err.log" || true)
if [[ "$serving" == *"\"version\":\"$version\""* && "$serving" == *"\"revision\":\""* ]]; then
    echo "  start-up event: ${serving:0:240}"
else
    echo "check-deb: no start-up event with version $version and a revision" >&2; cat "$work/err.log" >&2; exit 1
fi

kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { echo "check-deb: the service exited with $rc after SIGTERM" >&2; cat "$work/err.log" >&2; exit 1; }
echo "  stopped by SIGTERM: exit 0"

rm -f /etc/efgs/secrets/* /etc/efgs/trust-anchor.pem    # what the operator added
dpkg --purge efgs-server >/dev/null
for f in /usr/bin/efgs-server "$unit" /etc/efgs/efgs-server.toml; do
    [ ! -e "$f" ] || { echo "check-deb: $f left after purge" >&2; exit 1; }
done
[ ! -e /etc/efgs ] || { echo "check-deb: /etc/efgs left after purge: $(ls -A /etc/efgs)" >&2; exit 1; }
echo "  purged: binary, unit and configuration removed"
