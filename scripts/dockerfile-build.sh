#!/usr/bin/env bash
# Replays the Dockerfile's build stage without a Docker engine: every instruction of the first
# stage, in order — WORKDIR, COPY (exactly what it copies, from this repository, into a scratch
# root) and RUN (executed there with bash) — then checks the binary it produced is the real one.
# Keeps the Dockerfile and the test from drifting apart: the test runs the file, not a copy of it.
# The scratch tree's target/ is this repository's (compiled dependencies are reused; the crate
# itself is rebuilt, as in the image), so the replay costs one release link, not a cold build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
workdir="$scratch"
stage=0
# Join continuation lines, drop comments and blank lines.
instructions="$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$root/Dockerfile" | grep -vE '^\s*(#|$)')"
while IFS= read -r line; do
  keyword="${line%% *}"
  rest="${line#* }"
  case "$keyword" in
    FROM) stage=$((stage + 1)); [ "$stage" -le 1 ] || break ;;
    WORKDIR)
      workdir="$scratch$rest"; mkdir -p "$workdir"
      [ -e "$workdir/target" ] || ln -s "$root/target" "$workdir/target" ;;
    COPY)
      read -r -a parts <<< "$rest"
      dest="${parts[-1]}"
      for src in "${parts[@]:0:${#parts[@]}-1}"; do
        case "$src" in --*) echo "dockerfile-build: COPY option $src is not replayed" >&2; exit 1 ;; esac
        target="$workdir/$dest"
        if [ -d "$root/$src" ]; then mkdir -p "$target"; cp -a "$root/$src/." "$target"
        else mkdir -p "$(dirname "$target")"; cp -a "$root/$src" "$target"; fi
      done ;;
    RUN)
      echo "== RUN ${rest:0:100}"
      if [[ "$rest" == apt-get* ]] && [ "$(id -u)" -ne 0 ]; then
        echo "   (not root: apt-get skipped; scripts/setup.sh installed the same packages)"
      else
        (cd "$workdir" && bash -euo pipefail -c "$rest")
      fi ;;
    ENV|ARG|LABEL|USER|EXPOSE|ENTRYPOINT|CMD|SHELL) ;;
    *) echo "dockerfile-build: instruction $keyword is not replayed" >&2; exit 1 ;;
  esac
done <<< "$instructions"
binary="$workdir/target/release/etcd-upkeep"
"$binary" --version
# Read whole, not `| grep -q`: grep quits at the match and the binary may die of SIGPIPE.
help="$("$binary" run --help)"
[[ $help == *--space-target* ]] \
  || { echo "dockerfile-build: the image's binary is not the real etcd-upkeep" >&2; exit 1; }
# The release binary reads no test-only environment variable (src/daemon.rs TestFault).
if grep -q ETCD_UPKEEP_TEST_FAULT "$binary"; then
  echo "dockerfile-build: the release binary still reads ETCD_UPKEEP_TEST_FAULT" >&2; exit 1
fi
echo "dockerfile-build: the build stage ran as written and produced $("$binary" --version)"
