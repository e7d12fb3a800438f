#!/usr/bin/env bash
# Benchmarks: figures beside their targets, on a release build against real etcd.
#   scripts/bench.sh                 # all: idle heal churn analyze stall prevent
#   scripts/bench.sh bigdb           # the multi-GiB comparison with etcdctl defrag --cluster (long)
#   scripts/bench.sh lease           # lease renewals while the leader or the followers are hashed, ~2 GiB
#   scripts/bench.sh apiserver       # a 2 MB/s loop through a real kube-apiserver, with and without (2 × 10 min)
#   scripts/bench.sh heal churn      # some
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
etcd_bin="$(bash scripts/setup.sh | tail -n 1)"
export ETCD_BIN="${ETCD_BIN:-$etcd_bin}"
command -v /usr/bin/time >/dev/null || { sudo_if=""; [ "$(id -u)" -eq 0 ] || sudo_if=sudo; $sudo_if apt-get install -y -qq time >&2; }
if [[ " $* " == *" apiserver "* ]]; then
  KUBE_APISERVER_BIN="$(bash scripts/setup-apiserver.sh | tail -n 1)"
  export KUBE_APISERVER_BIN
fi
cargo build --release --locked --quiet --bin etcd-upkeep --example bench
export ETCD_UPKEEP_BIN="$root/target/release/etcd-upkeep"
exec "$root/target/release/examples/bench" "$@"
