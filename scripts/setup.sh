#!/usr/bin/env bash
# Installs what building and testing etcd-upkeep needs on a fresh Debian machine, idempotently:
#   - protoc (etcd-client's build script compiles etcd's protos),
#   - promtool (lints /metrics and the alert rules),
#   - libfaketime (the clock tests step the daemon's wall clock),
#   - the etcd matrix built from the Go module proxy into .tools/etcd-X (when Go is there): 3.6.8
#     (vCluster's deployed default, the suite's default), 3.6.4 (reports dbSizeQuota 0 when the
#     quota flag is unset), 3.7.3 (the newest 3.7) and 3.5.21 (vCluster with Kubernetes 1.32/1.33),
#   - etcd 3.4 (Debian bookworm's etcd-server: 3.4 is no `/v3` Go module, and the proxy refuses
#     go.etcd.io/etcd@v3.4.x+incompatible with 403) and, only when 3.5.21 did not build, Debian
#     trixie's etcd 3.5.16 as 3.5.
# Prints the etcd binary to use on its last line (3.6.8, else 3.5). Safe to run again: it skips
# what is present.
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

# etcd 3.5 fallback: fetch trixie's etcd-server .deb with a private apt configuration (the
# system's sources are left untouched) and unpack it under .tools/etcd-3.5.
fetch_debian_35() {
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
}
# etcd from the Go module proxy, by version (issue 20: what vCluster users run). Built in a
# throwaway module under .tools/, never vendored: `go get` the server and etcdctl at that
# version, `go build` both. The binaries are cached by version in ~/.cache/etcd-upkeep (a fresh
# clone, as CI's, then copies them instead of building); ETCD_GO_VERSIONS picks the versions.
build_etcd() {
  local v="$1" out="$tools/etcd-$1" cache="${XDG_CACHE_HOME:-$HOME/.cache}/etcd-upkeep/etcd-$1"
  if [ ! -x "$out/etcd" ] && [ -x "$cache/etcd" ]; then
    mkdir -p "$out" && cp "$cache/etcd" "$cache/etcdctl" "$out/"
  fi
  if [ ! -x "$out/etcd" ]; then
    command -v go >/dev/null || { echo "setup: etcd $v needs Go (https://go.dev) to build from the module proxy; skipped" >&2; return 0; }
    echo "setup: building etcd $v and etcdctl from the Go module proxy into .tools/etcd-$v (about a minute each, once)" >&2
    local mod="$tools/go-etcd-$v"
    rm -rf "$mod" && mkdir -p "$mod" "$out"
    (cd "$mod" && quiet go mod init etcd-upkeep.local/etcd-build \
      && quiet go get "go.etcd.io/etcd/server/v3@v$v" "go.etcd.io/etcd/etcdctl/v3@v$v" \
      && quiet go build -o "$out/" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3) \
      || { echo "setup: etcd $v did not build (see $log); skipped" >&2; rm -rf "$out"; return 0; }
    mv "$out/server" "$out/etcd"
    rm -rf "$mod"
    mkdir -p "$cache" && cp "$out/etcd" "$out/etcdctl" "$cache/"
  fi
  local said
  said="$("$out/etcd" --version)"
  said="${said%%$'\n'*}"
  [ "$said" = "etcd Version: $v" ] || { echo "setup: .tools/etcd-$v says '$said'" >&2; return 1; }
}
# The matrix (issue 20). A version that does not build is skipped with its error in the log;
# the test command says which versions ran.
versions="${ETCD_GO_VERSIONS:-3.6.8 3.6.4 3.7.3 3.5.21}"
for v in $versions; do build_etcd "$v"; done
# Debian's 3.5 stands in for 3.5.21 when that was asked for and did not build, and for the
# default when no etcd came from the proxy at all (no Go here).
if [ ! -x "$tools/etcd-3.5/usr/bin/etcd" ] && [ ! -x "$tools/etcd-3.5.21/etcd" ] \
   && { [[ " $versions " == *" 3.5.21 "* ]] || [ ! -x "$tools/etcd-3.6.8/etcd" ]; }; then
  fetch_debian_35
fi

# Not `| head -1`: under pipefail, etcd dies of SIGPIPE writing its second line (exit 141).
default="$tools/etcd-3.6.8/etcd"
[ -x "$default" ] || default="$tools/etcd-3.5.21/etcd"
[ -x "$default" ] || default="$tools/etcd-3.5/usr/bin/etcd"
version="$("$default" --version)"
echo "${version%%$'\n'*}" >&2
echo "$default"
