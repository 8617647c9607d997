#!/usr/bin/env bash
# make demo: what Ferry reads from a config repo (the repository's own
# examples), what it says about a broken one, then the catalog engine on the
# real community-operators v4.20 catalog served by an embedded registry
# (hack/demo), mirrored into a second one, twice; then ferry run on the
# directory and on the same config repo served by an embedded git server
# (git http-backend): a pushed change, a signed webhook, Ferry's render commit
# pushed back. Needs nothing outside the repository but git.
set -uo pipefail
ferry=${1:-bin/ferry}
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "ferry version"
"$ferry" version

step "ferry validate examples   (a config repo: 3 Catalogs, a Mirror, Samples and an oc-mirror ImageSetConfiguration)"
"$ferry" validate examples || exit 1

step "ferry validate -o yaml examples   (the effective objects, defaults applied; first 40 lines)"
"$ferry" validate -o yaml examples | sed -n '1,40p'

step "ferry validate spec/testdata/load/invalid-range   (bad input: every problem, file:line, exit 2)"
"$ferry" validate spec/testdata/load/invalid-range
echo "exit code: $?"

# The catalog engine on a real catalog, against an embedded registry.
go run ./hack/demo "$ferry"
