#!/usr/bin/env bash
# Builds the Debian package of efgs-server with dpkg-deb (no other packaging tools):
# /usr/bin/efgs-server, the hardened systemd unit, /etc/efgs/efgs-server.toml and
# /etc/default/efgs-server (conffiles), the operator documents under /usr/share/doc.
#
#   scripts/package-deb.sh                      # cargo build --release, then package (releases)
#   scripts/package-deb.sh --binary PATH        # package an existing binary (CI: the debug build)
#   scripts/package-deb.sh --profile debug      # build with that cargo profile, then package
#   options: --out DIR (default: $CARGO_TARGET_DIR or target, then /debian)
#            --compression xz|gzip|none (default xz; CI uses none: xz of a debug binary takes minutes)
#
# Prints the path of the .deb on its last line. The version is the binary's own
# (`efgs-server --version`), so the package always says what it contains.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" profile=release out="" compression=xz
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --compression) compression=$2; shift 2 ;;
        *) echo "usage: $0 [--binary PATH | --profile release|debug] [--out DIR]" >&2; exit 2 ;;
    esac
done
target=${CARGO_TARGET_DIR:-target}
out=${out:-$target/debian}
[ "$profile" = debug ] && profile=dev
if [ -z "$binary" ]; then
    cargo build --locked -p efgs-server --bin efgs-server --profile "$profile" >&2
    dir=$profile; [ "$profile" = dev ] && dir=debug
    binary=$target/$dir/efgs-server
fi
[ -x "$binary" ] || { echo "$binary: no such executable" >&2; exit 1; }

# "efgs-server 0.1.0 (git 0123456789ab)"
version_line=$("$binary" --version)
version=$(echo "$version_line" | awk '{print $2}')
revision=$(echo "$version_line" | sed -n 's/.*(git \([^)]*\)).*/\1/p')
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "unexpected --version: $version_line" >&2; exit 1; }
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -D -m 0755 "$binary" "$root/usr/bin/efgs-server"
install -D -m 0644 packaging/efgs-server.service "$root/lib/systemd/system/efgs-server.service"
install -D -m 0640 packaging/efgs-server.toml "$root/etc/efgs/efgs-server.toml"
install -D -m 0644 packaging/efgs-server.default "$root/etc/default/efgs-server"
doc=$root/usr/share/doc/efgs-server
install -d "$doc"
for f in README.md CHANGELOG.md docs/deploy.md docs/CONFIGURATION.md docs/LOGGING.md \
         docs/runbook.md docs/hosting.md docs/security-plan.md docs/API-ERRORS.md; do
    install -m 0644 "$f" "$doc/"
done
cat > "$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: efgs-rs
Source: built from git revision $revision

Files: *
License: EUPL-1.2
 The full text is in the source repository's LICENSE file and at
 https://interoperable-europe.ec.europa.eu/collection/eupl/eupl-text-eupl-12
COPYRIGHT

install -d "$root/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
printf '%s\n' /etc/efgs/efgs-server.toml /etc/default/efgs-server > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: efgs-server
Version: $version
Architecture: $arch
Maintainer: efgs-rs maintainers <efgs-rs@localhost>
Installed-Size: $size
Depends: libc6, passwd
Recommends: postgresql-client
Section: net
Priority: optional
Homepage: https://github.com/efgs-rs/efgs-rs
Description: European Federation Gateway Service (git $revision)
 The hub through which national exposure-notification backends upload signed
 batches of diagnosis keys and download the keys of every other country.
 Speaks the reference EFGS wire protocol. Runs as the systemd service
 efgs-server under its own user; configuration in /etc/efgs/efgs-server.toml.
CONTROL

mkdir -p "$out"
deb=$out/efgs-server_${version}_${arch}.deb
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$deb" >&2
echo "$deb"
