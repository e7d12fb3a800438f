#!/usr/bin/env bash
# The test command (README, CI): installs what is missing (protoc, promtool, the etcd matrix —
# 3.6.8, 3.6.4, 3.7.3 and 3.5.21 built from the Go module proxy, 3.4 from Debian —, libfaketime,
# cargo-nextest, cargo-fuzz), lints the Prometheus rules and unit-tests the alerts, validates the
# vCluster values snippet, runs every test against real etcd 3.6.8 processes (vCluster's deployed
# default; the releases suite also starts 3.6.4 and 3.7.3), the demo, the core suites against
# etcd 3.7.3, 3.5.21 and 3.4, and fuzzes every parser for a short while. It ends with one line per
# etcd version: what ran there and how it went. CI (.ci/run) also replays the Dockerfile's
# release build, which alone takes longer than all of this.
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
else
  echo "== SKIPPED: the vCluster values schema check (no $validator beside this clone)"
fi

# cargo-nextest runs every test as its own process, three at a time (.config/nextest.toml): each
# integration test starts its own etcd cluster and mostly waits on it. It ships with this
# machine's toolchain; elsewhere it is installed once from crates.io.
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo nextest --version >/dev/null 2>&1; then
  phase "installing cargo-nextest (crates.io)"
  cargo install --locked --quiet cargo-nextest
fi
log="$(mktemp)"
fuzz_log="$(mktemp)"
# Not `kill "${fuzz_build:-0}"`: `kill 0` signals this whole process group, the script
# included, and a failed test would then exit 143 instead of with its own status.
trap 'rm -f "$log" "$fuzz_log" "${versions_log:-}"; if [ -n "${fuzz_build:-}" ]; then kill "$fuzz_build" 2>/dev/null || true; fi' EXIT

# The fuzz targets build from now on at the lowest CPU and I/O priority, in the time the other
# steps leave: the test build's single-crate stretches and links, then the tests, which mostly
# wait on etcd (whose fsyncs come first).
nice -n 19 ionice -c 3 bash scripts/fuzz.sh build >"$fuzz_log" 2>&1 &
fuzz_build=$!

phase "build the tests"
cargo nextest run --locked --no-run 2>&1 | tail -n 3

# One line per etcd version at the end: which suites ran on it, and their counts.
versions_log="$(mktemp)"
summary() { awk '/^ *Summary / { for (i = 2; i <= NF; i++) if ($i ~ /^(passed|failed)/) { gsub(/[,;]/, "", $i); s[$i] += $(i - 1) } } END { printf "%d passed, %d failed", s["passed"], s["failed"] }' "$1"; }
# run_suite LABEL ETCD FILTER [THREADS]: the tests FILTER selects (all when empty) against ETCD,
# THREADS at a time (.config/nextest.toml's 3 by default).
run_suite() {
  local label="$1" bin="$2" filter="$3" threads="${4:-}" out version; out="$(mktemp)"
  version="$(first_line "$bin" --version | sed 's/etcd Version: //')"
  local args=(--locked)
  [ -n "$filter" ] && args+=(-E "$filter")
  [ -n "$threads" ] && args+=(--test-threads "$threads")
  ETCD_BIN="$bin" cargo nextest run "${args[@]}" > "$out" 2>&1 || { cat "$out"; echo "etcd $version: $label: FAILED" >&2; rm -f "$out"; return 1; }
  cat "$out" >> "$log"
  grep -E '^ *(Summary|SLOW|FAIL)' "$out" || true
  echo "etcd $version: $label: $(summary "$out")" >> "$versions_log"
  rm -f "$out"
}

phase "every test: unit, properties, the real-etcd integration tests (the apiserver suite apart) on etcd $(first_line "$ETCD_BIN" --version | sed 's/etcd Version: //')"
# The real-apiserver suite (tests/integration/apiserver.rs) is not here: it needs a
# kube-apiserver whose first build takes about 5 minutes, so CI runs it from .ci/run
# (scripts/apiserver-tests.sh).
run_suite "every test: unit, properties, the real-etcd integration tests (the apiserver suite apart)" "$ETCD_BIN" 'not test(/^apiserver::/)'

# The README's run command, as a user runs it: the demo exits 0 only if etcd-upkeep held the
# sync loop below the quota, then healed the NOSPACE and a write went through afterwards. It
# runs beside the first core suite below (its own etcd; it mostly waits).
demo_log="$(mktemp)"
bash scripts/demo.sh >"$demo_log" 2>&1 &
demo=$!

# The core suites on the other release lines: TLS and observation (foundation), compaction,
# defragmentation, leadership moves, the heal and its disarm (maintenance), the election's
# lease-bound keys (actors), and the space controller against a sync loop (prevention).
core='test(/^(foundation|maintenance|actors|prevention)::/)'
label="the core suites (foundation, maintenance, actors, prevention)"
# 3.5: 3.5.21 from the proxy, else Debian trixie's 3.5.16 (setup.sh fetches it only then).
etcd35="$root/.tools/etcd-3.5.21/etcd"
[ -x "$etcd35" ] || etcd35="$root/.tools/etcd-3.5/usr/bin/etcd"
missing() { echo "== SKIPPED: $1 was not built or installed (see .tools/setup.log and the README's compatibility section)" | tee -a "$versions_log"; }
etcd37="$root/.tools/etcd-3.7.3/etcd"
phase "$label on etcd 3.7.3, beside the demo (scripts/demo.sh, as the README runs it)"
if [ -x "$etcd37" ]; then run_suite "$label" "$etcd37" "$core"; else missing "$etcd37"; fi
if ! wait "$demo"; then
  cat "$demo_log"; rm -f "$demo_log"; echo "demo: FAILED" >&2; exit 1
fi
tail -n 3 "$demo_log"; rm -f "$demo_log"
# 3.5 and 3.4 one after the other: side by side (two tests at a time each) took as long and a
# timing-sensitive heal failed under the load.
for bin in "$etcd35" /usr/bin/etcd; do
  if [ -x "$bin" ]; then
    phase "$label on etcd $(first_line "$bin" --version | sed 's/etcd Version: //')"
    run_suite "$label" "$bin" "$core"
  else
    missing "$bin"
  fi
done

phase "waiting for the fuzz targets' build"
wait "$fuzz_build" || { cat "$fuzz_log"; echo "fuzz: the targets did not build" >&2; exit 1; }
fuzz_seconds="${FUZZ_SECONDS:-10}"
phase "fuzzing: every target for ${fuzz_seconds} s (scripts/fuzz.sh; long runs: scripts/fuzz.sh 600)"
bash scripts/fuzz.sh "$fuzz_seconds" | tee -a "$fuzz_log"

# One plain closing line with the totals of every test binary.
# nextest's closing line per run: "Summary [ 190.3s] 171 tests run: 171 passed, 0 skipped".
# awk, not grep: a grep that matches nothing ("0 failed" is never printed) exits 1 under pipefail.
count() { awk -v what="$1" '/^ *Summary / { for (i = 2; i <= NF; i++) if ($i ~ "^" what) s += $(i - 1) } END { print s + 0 }' "$log"; }
passed=$(count passed)
failed=$(count failed)
targets=$(grep -c '^fuzz .*no crash' "$fuzz_log" || true)
phase "done"
echo "== per etcd version"
cat "$versions_log"
echo "tests: ${passed} passed, ${failed} failed; fuzz: ${targets} targets, no crash"
