#!/usr/bin/env bash
# The test command (README, CI): installs what is missing (protoc, promtool, etcd 3.4 and 3.5,
# cargo-fuzz), lints the Prometheus rules and unit-tests the alerts, validates the vCluster values
# snippet, runs every test against real etcd 3.5 processes and the core suites against etcd 3.4,
# replays the Dockerfile's build stage, and fuzzes every parser for a short while.
# Exits non-zero on the first failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Each phase's time, so a slow test command says where its minutes went.
phase_start=$SECONDS
phase() { echo "== [$((SECONDS - phase_start)) s] $*"; }

etcd_bin="$(bash scripts/setup.sh | tail -n 1)"
export ETCD_BIN="${ETCD_BIN:-$etcd_bin}"
# The first line of a command's output, read whole: `cmd | head -n 1` under pipefail fails
# with 141 whenever cmd is still writing when head exits.
first_line() { local out; out="$("$@")"; echo "${out%%$'\n'*}"; }
phase "etcd: $(first_line "$ETCD_BIN" --version) ($ETCD_BIN)"

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

phase "cargo test (unit + real-etcd integration) on etcd 3.5"
# Two test threads: each integration test runs its own etcd cluster; the machine has 2 cores.
log="$(mktemp)"
fuzz_log="$(mktemp)"
# Not `kill "${fuzz_build:-0}"`: `kill 0` signals this whole process group, the script
# included, and a failed test would then exit 143 instead of with its own status.
trap 'rm -f "$log" "$fuzz_log"; if [ -n "${fuzz_build:-}" ]; then kill "$fuzz_build" 2>/dev/null || true; fi' EXIT
cargo test --locked --no-run 2>&1 | tail -n 3
phase "the tests run"
cargo test --locked -- --test-threads 2 2>&1 | tee "$log"

# etcd 3.4 (Debian bookworm): the suites that cover every RPC the daemon makes — TLS and
# observation (foundation), compaction, defragmentation, leadership moves and disarm
# (maintenance), and the election's lease-bound keys (actors). The full suite runs on 3.5.
etcd34=/usr/bin/etcd
phase "cargo test on etcd 3.4: foundation, maintenance, actors ($(first_line "$etcd34" --version))"
ETCD_BIN="$etcd34" cargo test --locked --test foundation --test maintenance --test actors \
  -- --test-threads 2 2>&1 | tee -a "$log"

# The fuzz targets build beside the Dockerfile's release build: its fat-LTO link runs on one
# core for minutes, and the fuzz build fills the other.
bash scripts/fuzz.sh build >"$fuzz_log" 2>&1 &
fuzz_build=$!
phase "the Dockerfile's build stage, replayed instruction by instruction (no Docker engine here)"
bash scripts/dockerfile-build.sh
wait "$fuzz_build" || { cat "$fuzz_log"; echo "fuzz: the targets did not build" >&2; exit 1; }
fuzz_seconds="${FUZZ_SECONDS:-15}"
phase "fuzzing: every target for ${fuzz_seconds} s (scripts/fuzz.sh; long runs: scripts/fuzz.sh 600)"
bash scripts/fuzz.sh "$fuzz_seconds" | tee -a "$fuzz_log"

# One plain closing line with the totals of every test binary.
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
targets=$(grep -c '^fuzz .*no crash' "$fuzz_log" || true)
phase "done"
echo "tests: ${passed} passed, ${failed} failed; fuzz: ${targets} targets, no crash"
