#!/usr/bin/env bash
# The README's run command: installs what is missing (protoc, the etcd matrix into .tools/), builds
# etcd-upkeep, and runs the demo — a local 3-member TLS etcd filled by a simulated CRD sync loop
# until NOSPACE, healed by etcd-upkeep in front of you. Exits 0 only if the heal happened.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The demo needs one etcd: 3.6.8 (vCluster's deployed default), not the whole test matrix.
etcd_bin="$(ETCD_GO_VERSIONS="${ETCD_GO_VERSIONS:-3.6.8}" bash scripts/setup.sh | tail -n 1)"
export ETCD_BIN="${ETCD_BIN:-$etcd_bin}"
echo "building etcd-upkeep (first build takes a few minutes)..."
cargo build --locked --quiet --bin etcd-upkeep --example demo
exec "$root/target/debug/examples/demo"
