#!/usr/bin/env bash
# Installs what building and testing etcd-upkeep needs on a fresh Debian machine, idempotently:
#   - protoc (etcd-client's build script compiles etcd's protos),
#   - promtool (lints /metrics and the alert rules),
#   - etcd 3.5 (from Debian trixie's etcd-server, unpacked into .tools/ — nothing installed system-wide)
#     and etcd 3.4 (Debian bookworm's etcd-server) so both supported server lines are at hand.
# Prints the etcd binary to use on its last line. Safe to run again: it skips what is present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { sudo_if_needed apt-get update -qq >&2; apt_updated=1; }
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# protoc plus the well-known .proto files (google/protobuf/descriptor.proto) etcd's protos import.
{ command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/descriptor.proto ]; } \
  || apt_install protobuf-compiler libprotobuf-dev
command -v promtool >/dev/null || apt_install prometheus
# etcd 3.4 (bookworm) gives us etcdctl too; the daemon must work with 3.4 as well.
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || apt_install etcd-server etcd-client || true

# etcd 3.5: fetch trixie's etcd-server .deb with a private apt configuration (the system's
# sources are left untouched) and unpack it under .tools/etcd-3.5.
if [ ! -x "$tools/etcd-3.5/usr/bin/etcd" ]; then
  aptdir="$tools/apt-trixie"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/etc"
  echo "deb http://deb.debian.org/debian trixie main" > "$aptdir/etc/sources.list"
  aptopts=(-o Dir::Etc::SourceList="$aptdir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$aptdir/cache"
           -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1)
  apt-get "${aptopts[@]}" update -qq >&2
  (cd "$aptdir" && apt-get "${aptopts[@]}" download etcd-server >&2)
  deb="$(ls "$aptdir"/etcd-server_*.deb | head -1)"
  rm -rf "$tools/etcd-3.5" && mkdir -p "$tools/etcd-3.5"
  dpkg -x "$deb" "$tools/etcd-3.5"
fi
"$tools/etcd-3.5/usr/bin/etcd" --version | head -1 >&2
echo "$tools/etcd-3.5/usr/bin/etcd"
