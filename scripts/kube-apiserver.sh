#!/usr/bin/env bash
# Build (once) and cache a real kube-apiserver for the operator's end-to-end test.
#
# Source: Debian's `kubernetes` SOURCE package (1.20.x, vendor/ included), built with
# Debian's golang-1.19 via `make WHAT=cmd/kube-apiserver`; etcd comes from Debian's
# `etcd-server` (3.4). Everything is fetched through apt; nothing is committed.
#
# The binary is cached outside the repo, keyed by the Debian source version:
#   ${MEDOPS_KUBE_CACHE:-/var/cache/medops}/kube-apiserver-<version>/kube-apiserver
# A rerun with the cache present does no apt work at all. On success the last line
# printed to stdout is the binary's path (progress goes to stderr).
#
# One patch: the source vendors github.com/modern-go/reflect2 v1.0.1, which crashes under
# Go >= 1.18 ("fatal error: fault" in reflect2.UnsafeIterate while encoding a map, e.g. on
# the first custom resource create). It is replaced by Debian's reflect2 1.0.2
# (golang-github-modern-go-reflect2-dev), the upstream fix; PATCH_LEVEL is in the cache key.
#
# Usage: scripts/kube-apiserver.sh [--print-path]
#   --print-path  only print the cached binary's path (exit 1 if it is not built)
set -euo pipefail

CACHE_ROOT="${MEDOPS_KUBE_CACHE:-/var/cache/medops}"
SRC_PKG=kubernetes
GO_PKG=golang-1.19-go
GO_BIN=/usr/lib/go-1.19/bin
REFLECT2_PKG=golang-github-modern-go-reflect2-dev
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
PATCH_LEVEL=medops1  # bump when the build changes: a new cache entry is built
DEB_SRC_FILE=/etc/apt/sources.list.d/medops-deb-src.sources
export DEBIAN_FRONTEND=noninteractive

log() { printf '[kube-apiserver.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A "latest" pointer lets a rerun find the cache without asking apt for the version.
latest_link="$CACHE_ROOT/kube-apiserver-latest-$PATCH_LEVEL"
cached_bin() {
  if [[ -x "$latest_link/kube-apiserver" ]] && command -v etcd >/dev/null 2>&1; then
    readlink -f "$latest_link/kube-apiserver"
    return 0
  fi
  return 1
}

if [[ "${1:-}" == "--print-path" ]]; then
  cached_bin || { log "no cached kube-apiserver under $CACHE_ROOT (run scripts/kube-apiserver.sh)"; exit 1; }
  exit 0
fi

if bin=$(cached_bin); then
  log "cached: $bin ($("$bin" --version 2>/dev/null || echo '?')); etcd: $(command -v etcd)"
  echo "$bin"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "needs root (or sudo) for apt-get and $CACHE_ROOT"
  SUDO="sudo -n"
fi

# 1. deb-src for the same suites as the binary sources (idempotent).
if [[ ! -f "$DEB_SRC_FILE" ]]; then
  log "adding deb-src entries in $DEB_SRC_FILE"
  $SUDO tee "$DEB_SRC_FILE" >/dev/null <<'SRC'
# Added by medops scripts/kube-apiserver.sh: source packages for the e2e kube-apiserver build.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

log "apt-get update"
$SUDO apt-get update -q >&2 || die "apt-get update failed"

log "installing build deps: $GO_PKG $REFLECT2_PKG rsync make dpkg-dev etcd-server"
$SUDO apt-get install -y -q --no-install-recommends "$GO_PKG" "$REFLECT2_PKG" rsync make \
  dpkg-dev etcd-server >&2 \
  || die "apt-get install failed"

version=$(apt-cache showsrc "$SRC_PKG" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
[[ -n "$version" ]] || die "no deb-src for '$SRC_PKG' (is $DEB_SRC_FILE reachable?); the e2e test cannot run"
# 1.20.5+really1.20.2-1.1 -> 1.20.2 ; key the cache by the full Debian version.
key=$(printf '%s-%s' "$version" "$PATCH_LEVEL" | tr -c 'A-Za-z0-9.+_-' '_')
dest="$CACHE_ROOT/kube-apiserver-$key"
log "Debian source $SRC_PKG $version -> $dest"

if [[ ! -x "$dest/kube-apiserver" ]]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/medops-kube-build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  log "downloading source into $work"
  (cd "$work" && apt-get source -q --download-only "$SRC_PKG=$version" >&2) || die "apt-get source failed"
  log "unpacking source"
  (cd "$work" && dpkg-source -q --no-check -x ./*.dsc src >&2) || die "dpkg-source -x failed"
  vendored="$work/src/vendor/github.com/modern-go/reflect2"
  [[ -d "$vendored" && -f "$REFLECT2_SRC/reflect2.go" ]] || die "reflect2 sources not found"
  log "patching vendor/github.com/modern-go/reflect2 (v1.0.1 -> Debian's 1.0.2: Go 1.18+ fix)"
  rm -rf "$vendored" && mkdir -p "$vendored"
  find "$REFLECT2_SRC" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp -L {} "$vendored/" \;
  log "building cmd/kube-apiserver with $("$GO_BIN/go" version) (several minutes on 2 cores)"
  start=$(date +%s)
  (
    cd "$work/src"
    export PATH="$GO_BIN:$PATH" GOFLAGS=-mod=vendor GO111MODULE=on GOCACHE="$work/gocache" \
      GOTOOLCHAIN=local KUBE_VERBOSE=2 KUBE_BUILD_PLATFORMS=linux/$(dpkg --print-architecture)
    make WHAT=cmd/kube-apiserver >&2
  ) || die "make WHAT=cmd/kube-apiserver failed"
  built=$(find "$work/src/_output" -type f -name kube-apiserver -perm -u+x | head -n1)
  [[ -n "$built" ]] || die "build finished but no kube-apiserver binary under _output"
  log "built in $(( $(date +%s) - start )) s: $built"
  $SUDO mkdir -p "$dest"
  $SUDO install -m 0755 "$built" "$dest/kube-apiserver.tmp"
  $SUDO mv -f "$dest/kube-apiserver.tmp" "$dest/kube-apiserver"
fi
$SUDO ln -sfn "$dest" "$latest_link"
bin=$(readlink -f "$latest_link/kube-apiserver")
log "ready: $bin ($("$bin" --version 2>/dev/null || echo '?')); etcd: $(command -v etcd)"
echo "$bin"
