#!/usr/bin/env bash
# Installs what building and testing etcd-upkeep needs on a fresh Debian machine, idempotently:
#   - protoc (etcd-client's build script compiles etcd's protos),
#   - promtool (lints /metrics and the alert rules),
#   - libfaketime (the clock tests step the daemon's wall clock),
#   - etcd 3.5 (from Debian trixie's etcd-server, unpacked into .tools/ — nothing installed system-wide)
#     and etcd 3.4 (Debian bookworm's etcd-server) so both supported server lines are at hand.
# Prints the etcd binary to use on its last line. Safe to run again: it skips what is present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"
# apt's own output goes to a log, not to the narration of the demo or the test run; on a failure
# its tail is shown.
log="$tools/setup.log"
: > "$log"
quiet() {
  if ! "$@" >>"$log" 2>&1; then
    echo "setup: '$*' failed; the end of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  echo "setup: installing $* (apt; log: ${log#"$root"/})" >&2
  [ -n "$apt_updated" ] || { quiet sudo_if_needed apt-get update -qq; apt_updated=1; }
  quiet sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# protoc plus the well-known .proto files (google/protobuf/descriptor.proto) etcd's protos import.
{ command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/descriptor.proto ]; } \
  || apt_install protobuf-compiler libprotobuf-dev
command -v promtool >/dev/null || apt_install prometheus
# etcd 3.4 (bookworm) gives us etcdctl too; the test command runs part of the suite on it.
# jq and time: the analyze benchmark's baselines. iproute2: the partition tests' namespaces.
{ [ -x /usr/bin/etcd ] && [ -x /usr/bin/etcdctl ]; } || apt_install etcd-server etcd-client
{ command -v jq >/dev/null && [ -x /usr/bin/time ] && command -v ip >/dev/null; } \
  || apt_install jq time iproute2
# libfaketime: the clock tests step the daemon's wall clock (tests/integration/clock.rs).
compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || apt_install faketime libfaketime

# etcd 3.5: fetch trixie's etcd-server .deb with a private apt configuration (the system's
# sources are left untouched) and unpack it under .tools/etcd-3.5.
if [ ! -x "$tools/etcd-3.5/usr/bin/etcd" ]; then
  aptdir="$tools/apt-trixie"
  mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/etc"
  echo "deb http://deb.debian.org/debian trixie main" > "$aptdir/etc/sources.list"
  aptopts=(-o Dir::Etc::SourceList="$aptdir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State::Lists="$aptdir/lists" -o Dir::Cache="$aptdir/cache"
           -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1)
  echo "setup: fetching etcd 3.5 (Debian trixie's etcd-server) into .tools/etcd-3.5" >&2
  quiet apt-get "${aptopts[@]}" update -qq
  (cd "$aptdir" && quiet apt-get "${aptopts[@]}" download etcd-server)
  debs=("$aptdir"/etcd-server_*.deb); deb="${debs[0]}"
  rm -rf "$tools/etcd-3.5" && mkdir -p "$tools/etcd-3.5"
  dpkg -x "$deb" "$tools/etcd-3.5"
fi
# Not `| head -1`: under pipefail, etcd dies of SIGPIPE writing its second line (exit 141).
version="$("$tools/etcd-3.5/usr/bin/etcd" --version)"
echo "${version%%$'\n'*}" >&2
echo "$tools/etcd-3.5/usr/bin/etcd"
