#!/usr/bin/env bash
# An offline base image for the medops images: Debian bookworm (minbase) with python3.11
# and venv, made with debootstrap and `docker import` because no image registry can be
# reached from an air-gapped build host. The root filesystem tarball is cached under
# $MEDOPS_KUBE_CACHE, so a later run only imports it (or finds the image already there).
#   usage: scripts/base-image.sh IMAGE_NAME
set -euo pipefail
name=${1:?usage: base-image.sh IMAGE_NAME}
DOCKER=${DOCKER:-docker}
cache=${MEDOPS_KUBE_CACHE:-/var/cache/medops}/base-image
tarball=$cache/bookworm-python3.tar
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if $DOCKER image inspect "$name" >/dev/null 2>&1; then exit 0; fi
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
      debootstrap >/dev/null
  }
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm (minbase + python3) into $root ..." >&2
  debootstrap --variant=minbase --include=python3,python3-venv \
    bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $cache/debootstrap.log" >&2; exit 1; }
  # what a container never needs: apt lists, docs, man pages, locale data
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
$DOCKER import --change 'CMD ["/bin/bash"]' "$tarball" "$name" >/dev/null
