#!/usr/bin/env bash
# Compares Ferry's catalog pipeline with opm on the real catalogs in
# testdata/fbc/large: wall time and peak RSS (GNU time -v) of
#
#   opm render DIR -o json > /dev/null                    the bar
#   fbcbench -o json DIR - > /dev/null                    fbc.LoadFS + filter + fbc.WriteJSON to stdout
#   fbcbench DIR OUT                                      fbc.LoadFS + filter + fbc.WriteDir (YAML, one file per package)
#
# fbcbench (internal/fbc/internal/fbcbench) applies a trivial filter that
# visits every bundle. Each command runs RUNS times (default 5); the table
# shows the median wall time, CPU time (user+sys) and peak RSS, and the
# ratios of wall time and RSS to opm's.
#
#   hack/bench-fbc.sh                 certified-operators and community-operators-prod v4.20
#   hack/bench-fbc.sh v4.22           another version
#   RUNS=9 hack/bench-fbc.sh
#
# The machine is shared: run it when it is quiet, and compare medians.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=${1:-v4.20}
runs=${RUNS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-fbc.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { printf 'bench-fbc: %s\n' "$*" >&2; }

if [ ! -x /usr/bin/time ]; then
  log "installing GNU time from Debian"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi

opm=$("$root/hack/tools.sh" path opm)
fbcbench=$work/fbcbench
(cd "$root" && go build -o "$fbcbench" ./internal/fbc/internal/fbcbench)

# median: the median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure LABEL CMD...: runs CMD $runs times, prints
# "LABEL median_wall median_rss_kb median_cpu".
measure() {
  local label=$1
  shift
  local walls=() rsss=() cpus=() i
  for ((i = 0; i < runs; i++)); do
    rm -rf "$work/out"
    /usr/bin/time -v -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || {
      log "$label failed:"
      cat "$work/stderr.txt" >&2
      exit 1
    }
    walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time.txt")")
    rsss+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")")
    cpus+=("$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {print u + s}' "$work/time.txt")")
  done
  printf '%s %s %s %s\n' "$label" \
    "$(printf '%s\n' "${walls[@]}" | median)" \
    "$(printf '%s\n' "${rsss[@]}" | median)" \
    "$(printf '%s\n' "${cpus[@]}" | median)"
}

printf '\n%-32s %-26s %7s %7s %12s %8s %8s\n' catalog tool "wall s" "cpu s" "peak RSS MB" speedup "RSS/opm"
for catalog in certified-operators community-operators-prod; do
  tarball=$root/testdata/fbc/large/$catalog-catalogs-$version.tar.gz
  [ -f "$tarball" ] || { log "no $tarball"; exit 1; }
  mkdir -p "$work/$catalog"
  tar -xzf "$tarball" -C "$work/$catalog"
  dir=$work/$catalog/catalogs/$version
  size=$(du -sm "$dir" | cut -f1)

  # opm first: it sets the bar.
  read -r _ opm_wall opm_rss opm_cpu < <(measure opm "$opm" render "$dir" -o json)
  rows=("opm render -o json|$opm_wall|$opm_rss|$opm_cpu")
  read -r _ w r c < <(measure json "$fbcbench" -o json "$dir" -)
  rows+=("ferry WriteJSON (stdout)|$w|$r|$c")
  read -r _ w r c < <(measure dir "$fbcbench" -o yaml "$dir" "$work/out")
  rows+=("ferry WriteDir (yaml)|$w|$r|$c")

  for row in "${rows[@]}"; do
    IFS='|' read -r tool w r c <<<"$row"
    awk -v cat="$catalog $version (${size}MB)" -v t="$tool" -v w="$w" -v r="$r" -v c="$c" -v ow="$opm_wall" -v orss="$opm_rss" 'BEGIN {
      printf "%-32s %-26s %7.2f %7.2f %12.1f %7.1fx %7.0f%%\n", cat, t, w, c, r / 1024, ow / w, 100 * r / orss }'
  done
done
echo
echo "target: ferry at least 5x faster than opm, with at most 33% of its peak RSS (median of $runs runs)"
