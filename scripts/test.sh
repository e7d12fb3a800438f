#!/usr/bin/env bash
# The test command (README, CI): installs what is missing (protoc, promtool, etcd 3.5 into
# .tools/), lints the Prometheus rules and unit-tests the alerts, validates the vCluster values
# snippet, runs every test against real etcd processes, and replays the Dockerfile's build stage.
# Exits non-zero on the first failure.
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

validator="$root/../shared/scripts/validate-vcluster-values"
if [ -f "$validator" ]; then
  echo "== vCluster values schema (helm-values-snippet.yaml)"
  python3 -c 'import yaml, jsonschema, kubernetes' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check pyyaml jsonschema kubernetes
  python3 "$validator" helm-values-snippet.yaml
fi

echo "== cargo test (unit + real-etcd integration)"
# Two test threads: each integration test runs its own etcd cluster; the machine has 2 cores.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked -- --test-threads 2 2>&1 | tee "$log"

echo "== the Dockerfile's build stage, replayed instruction by instruction (no Docker engine here)"
bash scripts/dockerfile-build.sh

# One plain closing line with the totals of every test binary.
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed"
