#!/usr/bin/env bash
# Make sure a docker engine answers: install Debian's docker.io if there is none (root,
# apt), start dockerd in the background if none runs. Prints nothing when one is up.
# The engine stays up afterwards: `make e2e` only removes the containers it started.
set -euo pipefail
DOCKER=${DOCKER:-docker}
if $DOCKER info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing Debian's docker.io (dockerd, containerd, runc) ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
    docker.io >/dev/null
fi
log=${MEDOPS_DOCKERD_LOG:-/var/log/medops-dockerd.log}
echo "starting dockerd (log: $log) ..." >&2
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 60); do
  if $DOCKER info >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see $log" >&2
exit 1
