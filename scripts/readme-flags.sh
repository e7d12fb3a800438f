#!/usr/bin/env bash
# Prints the "Commands and flags" reference of README.md from the binary's own help.
# tests/integration/readme.rs fails when README.md and this output differ; to refresh:
#   cargo build && scripts/readme-flags.sh > /tmp/flags.md   (then paste between the markers)
set -euo pipefail
bin="${1:-target/debug/etcd-upkeep}"
for cmd in "" run status analyze heal; do
  if [ -z "$cmd" ]; then echo '### Global flags (`etcd-upkeep -h`)'; else echo "### \`etcd-upkeep $cmd -h\`"; fi
  echo
  echo '```text'
  # shellcheck disable=SC2086
  "$bin" $cmd -h
  echo '```'
  echo
done
