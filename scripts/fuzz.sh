#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every parser of untrusted or user input:
# the /registry key parser, the CEL defrag rule, sizes and durations, the quota metric, the
# cron translation, the Kubernetes value decoders and the web config file (fuzz/fuzz_targets/).
#
#   scripts/fuzz.sh build             build the targets (what the test command starts early)
#   scripts/fuzz.sh [SECONDS]         build, then fuzz every target for SECONDS (default 15),
#                                     two at a time; exits non-zero on the first crash
#   FUZZ_RELEASE=1 scripts/fuzz.sh 600   optimised and with AddressSanitizer, for long runs
#
# The machine has one stable toolchain. cargo-fuzz passes nightly-only flags (-Z sanitizer=…,
# -Z build-std-like options); RUSTC_BOOTSTRAP=1 is the compiler's own escape hatch that lets a
# stable rustc take them. The short runs build without optimisation and without a sanitizer
# (`--dev -s none`: the code is safe Rust, and that build takes a third of the time); the
# coverage instrumentation is the same.
#
# New inputs go to a scratch folder; the committed seeds (fuzz/corpus/<target>) stay small. A
# crash is left in fuzz/artifacts/<target>/ and printed; make it a unit test beside the parser.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz (crates.io)"
  cargo install --locked --quiet cargo-fuzz
fi

if [ "${FUZZ_RELEASE:-0}" = 1 ]; then
  flags=(--release --debug-assertions)
else
  flags=(--dev -s none)
fi
targets=$(cargo fuzz list)
cargo fuzz build "${flags[@]}" 2>&1 | grep -vE '^\s+(Compiling|Checking|Downloaded|Downloading)' || true
cargo fuzz build "${flags[@]}" >/dev/null 2>&1 # the status of the build itself (quiet when built)
[ "${1:-}" = build ] && exit 0

seconds="${1:-15}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
run() {
  local target="$1"
  mkdir -p "$scratch/$target" "artifacts/$target"
  if cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$target/" >"$scratch/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$scratch/$target.log" | tail -n 1)s, no crash"
  else
    echo "fuzz $target: CRASH (input in fuzz/artifacts/$target/)" >&2
    grep -m 10 -E 'panicked|ERROR|SUMMARY|overflow|Test unit written' "$scratch/$target.log" >&2 || true
    return 1
  fi
}
status=0
pids=()
for target in $targets; do
  run "$target" & pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
