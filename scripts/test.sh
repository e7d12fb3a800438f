#!/usr/bin/env bash
# The test command (README, CI): installs what is missing (protoc, promtool, etcd 3.5 into
# .tools/), then runs every test against real etcd processes, lints the Prometheus rules and
# unit-tests the alerts. Exits non-zero on the first failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

etcd_bin="$(bash scripts/setup.sh | tail -n 1)"
export ETCD_BIN="${ETCD_BIN:-$etcd_bin}"
echo "== etcd: $("$ETCD_BIN" --version | head -n 1) ($ETCD_BIN)"

if [ -d deploy/prometheus ]; then
  echo "== promtool check rules / test rules"
  promtool check rules deploy/prometheus/etcd-upkeep-rules.yaml
  promtool test rules deploy/prometheus/etcd-upkeep-rules.test.yaml
fi

echo "== cargo test (unit + real-etcd integration)"
# Two test threads: each integration test runs its own etcd cluster; the machine has 2 cores.
cargo test --locked -- --test-threads 2
