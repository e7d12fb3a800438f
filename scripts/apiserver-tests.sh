#!/usr/bin/env bash
# The real-apiserver suite (issue 22): etcd-upkeep against a kube-apiserver 1.36.3 built from the
# Go module proxy (scripts/setup-apiserver.sh; about 5 minutes once, then cached), in front of
# real etcd 3.6.8 (vCluster's deployed default). Objects are made through the API only.
#
# CI runs it from .ci/run after the README's test command, as it does the Dockerfile replay: the
# apiserver's first build alone would take a third of the test command's budget.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
start=$SECONDS
etcd_bin="$(bash scripts/setup.sh | tail -n 1)"
export ETCD_BIN="${ETCD_BIN:-$etcd_bin}"
KUBE_APISERVER_BIN="$(bash scripts/setup-apiserver.sh | tail -n 1)"
export KUBE_APISERVER_BIN
echo "== [$((SECONDS - start)) s] the real-apiserver suite: $("$KUBE_APISERVER_BIN" --version) on $("$ETCD_BIN" --version | sed -n 1p)"
export PATH="$HOME/.cargo/bin:$PATH"
# Each test's own figures (eprintln) are printed: the outage an API client saw, and so on.
cargo nextest run --locked -E 'test(/^apiserver::/)' --status-level pass --final-status-level none --success-output final
echo "== [$((SECONDS - start)) s] the real-apiserver suite passed"
