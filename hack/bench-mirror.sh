#!/usr/bin/env bash
# Mirror benchmark: Ferry's copy engine against a `crane copy` loop, a
# `skopeo copy --all` loop and `skopeo sync`, side by side on the same two
# local Debian docker-registry instances (a fresh mirror per tool), with one
# world built once from real catalogs, all at the same concurrency.
#
#   hack/bench-mirror.sh [small|community|full]   default: full
#
#   small      3 community-operators v4.20 packages (~40 images, seconds)
#   community  community-operators v4.20 (~2,300 images, ~15 min)
#   full       certified-operators + community-operators v4.20 (~7,700 images, about an hour)
#
# Environment: FERRY_BENCH_CONCURRENCY (default 8), FERRY_BENCH_TOOLS
# (default ferry,crane,skopeo-copy,skopeo-sync). The table is printed and
# kept in ${TMPDIR:-/tmp}/ferry-bench-mirror-SCALE.txt. docs/mirroring.md
# explains the columns and records the numbers measured so far.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scale=${1:-${FERRY_BENCH_SCALE:-full}}
case $scale in small|community|full) ;; *) echo "usage: $0 [small|community|full]" >&2; exit 2 ;; esac

# Everything the benchmark runs, resolved before the clock starts.
"$root/hack/tools.sh" path docker-registry >/dev/null
"$root/hack/tools.sh" path skopeo >/dev/null
"$root/hack/tools.sh" path crane >/dev/null
if [ ! -x /usr/bin/time ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi

out=${TMPDIR:-/tmp}/ferry-bench-mirror-$scale.txt
echo "bench-mirror: scale $scale, concurrency ${FERRY_BENCH_CONCURRENCY:-8}, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); output in $out" >&2
cd "$root"
FERRY_BENCH_SCALE=$scale go test ./internal/mirror -run '^$' -bench '^BenchmarkMirrorTools$' -benchtime 1x -timeout 0 -v 2>&1 | tee "$out"
