#!/usr/bin/env bash
# Installs and builds everything the tests need, caching built binaries so a
# warm run costs a few hashes. Idempotent; safe to call from every test run.
#
#   hack/tools.sh            install apt packages and build all Go tools
#   hack/tools.sh path NAME  print the cached binary path of NAME (building it if needed)
#
# Binaries go to $FERRY_TOOLS_DIR (default ~/.cache/ferry/tools), keyed by the
# hash of the tool module's go.mod/go.sum and the Go version, so bumping a
# version rebuilds and nothing else does.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools_dir=${FERRY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferry/tools}
mkdir -p "$tools_dir"

log() { printf 'tools: %s\n' "$*" >&2; }

apt_packages=(docker-registry skopeo apache2-utils git)
apt_binaries=(docker-registry skopeo htpasswd git)

install_apt() {
  local missing=0 b
  for b in "${apt_binaries[@]}"; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/bin/$b" ] || missing=1
  done
  [ "$missing" = 0 ] && return 0
  log "installing ${apt_packages[*]} from Debian"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # The docker-registry package starts a system service on :5000; tests run
  # their own instances, so stop it rather than compete for the port.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
}

# build NAME MODDIR PKG [CGO] [LDFLAGS] [TAGS]
build() {
  local name=$1 moddir=$root/test/tools/$2 pkg=$3 cgo=${4:-0} ldflags=${5:-} tags=${6:-}
  local key
  key=$( { cat "$moddir/go.mod" "$moddir/go.sum"; go env GOVERSION; echo "$cgo $ldflags $tags"; } | sha256sum | cut -c1-16)
  local out=$tools_dir/$name-$key
  if [ ! -x "$out" ]; then
    log "building $name (cold build; cached as $out)"
    local start=$SECONDS
    (cd "$moddir" && CGO_ENABLED=$cgo go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
    log "built $name in $((SECONDS - start))s"
  fi
  echo "$out"
}

kube_version=v1.35.4
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/component-base/version.gitTreeState=clean"

tool_path() {
  case $1 in
    kube-apiserver) build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver 0 "$kube_ldflags" ;;
    # kubectl of the same release, what `kubectl apply --server-side` users run;
    # the cluster benchmark puts Ferry next to it (internal/cluster).
    kubectl) build kubectl kubectl k8s.io/kubernetes/cmd/kubectl 0 "$kube_ldflags" ;;
    etcd) build etcd etcd go.etcd.io/etcd/server/v3 0 "-s -w" ;;
    # opm needs cgo for its SQLite driver; the tags are the ones upstream builds
    # with (openpgp in Go instead of libgpgme, SQLite JSON functions).
    opm) build opm opm github.com/operator-framework/operator-registry/cmd/opm 1 "-s -w" "json1 containers_image_openpgp" ;;
    # A gRPC client of opm's registry API, for asking a served catalog what
    # OLM would ask it.
    catalog-query) build catalog-query opm ./cmd/catalog-query 0 "-s -w" ;;
    # go-containerregistry's crane, the `crane copy` loop the mirror
    # benchmark compares Ferry with (hack/bench-mirror.sh).
    crane) build crane crane github.com/google/go-containerregistry/cmd/crane 0 "-s -w" ;;
    docker-registry|skopeo|htpasswd|git) install_apt; command -v "$1" || echo "/usr/bin/$1" ;;
    *) log "unknown tool $1"; return 2 ;;
  esac
}

case ${1:-all} in
  path) tool_path "$2" ;;
  all)
    install_apt
    for t in etcd opm catalog-query crane kube-apiserver kubectl; do tool_path "$t" >/dev/null; done
    log "all tools ready in $tools_dir"
    ;;
  *) log "usage: $0 [all | path NAME]"; exit 2 ;;
esac
