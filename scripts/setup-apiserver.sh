#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy into .tools/kube-X (issue 22: etcd's real
# client, in the tests of scripts/apiserver-tests.sh). Prints the binary on its last line.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces 33 k8s.io/* modules with its
# own ./staging directories. So it is built in a throwaway module under .tools/ that requires it
# and replaces each of those modules (read from that go.mod, not typed here) with the module
# published at v0.<minor>.<patch> — as k8s.io/perf-tests/clusterloader2 does. No Kubernetes
# source enters the repository. Cached by version in ~/.cache/etcd-upkeep (KUBE_VERSION picks
# it; vCluster's default is 1.36). Measured here: 4.5 minutes on 2 cores, once; a 150 MB binary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
v="${KUBE_VERSION:-1.36.3}"
out="$tools/kube-$v"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/etcd-upkeep/kube-$v"
log="$tools/setup-apiserver.log"
mkdir -p "$tools"
export PATH="$PATH:/usr/local/go/bin"

if [ ! -x "$out/kube-apiserver" ] && [ -x "$cache/kube-apiserver" ]; then
  mkdir -p "$out" && cp "$cache/kube-apiserver" "$out/"
fi
if [ ! -x "$out/kube-apiserver" ]; then
  command -v go >/dev/null || { echo "setup-apiserver: kube-apiserver $v needs Go (https://go.dev) to build from the module proxy" >&2; exit 1; }
  echo "setup-apiserver: building kube-apiserver $v from the Go module proxy into .tools/kube-$v (about 5 minutes, once; log: ${log#"$root"/})" >&2
  mod="$tools/go-kube-$v"
  rm -rf "$mod" && mkdir -p "$mod" "$out"
  : > "$log"
  fail() { echo "setup-apiserver: $1; the end of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
  (
    cd "$mod"
    go mod init etcd-upkeep.local/kube-build
    gomod="$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@v$v"; exit 1; }
    # Each `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`.
    staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "$gomod")"
    [ -n "$staging" ] || { echo "no staging replaces in $gomod"; exit 1; }
    for m in $staging; do go mod edit -replace "$m=$m@v0.${v#*.}"; done
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v$v"
    # The version its release build stamps (`--version`, and the apiserver's own version
    # checks), which a plain `go build` leaves at v0.0.0-master.
    pkg=k8s.io/component-base/version
    go build -o "$out/" -ldflags "-X $pkg.gitVersion=v$v -X $pkg.gitMajor=${v%%.*} -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver
  ) >>"$log" 2>&1 || { rm -rf "$out"; fail "kube-apiserver $v did not build"; }
  rm -rf "$mod"
  mkdir -p "$cache" && cp "$out/kube-apiserver" "$cache/"
fi
said="$("$out/kube-apiserver" --version)"
[ "$said" = "Kubernetes v$v" ] || { echo "setup-apiserver: .tools/kube-$v/kube-apiserver says '$said'" >&2; exit 1; }
echo "$said" >&2
echo "$out/kube-apiserver"
