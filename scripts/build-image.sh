#!/usr/bin/env bash
# Build the medops CPU image offline and say what it cost: engine up, base image, host
# wheelhouse, then the classic builder (the docker CLI here has no buildx).
#   usage: [TARGET=cpu|gpu] scripts/build-image.sh PYTHON BASE TAG [TAG ...]
# gpu takes a wheelhouse with the CUDA torch (TORCH=cuda, scripts/wheelhouse.sh).
set -euo pipefail
py=${1:?usage: build-image.sh PYTHON BASE TAG [TAG ...]}
base=${2:?}
shift 2
DOCKER=${DOCKER:-docker}
cache=${MEDOPS_KUBE_CACHE:-/var/cache/medops}
context=$cache/image-context
log=$cache/image-build.log
started=$(date +%s)

bash scripts/container-engine.sh
# the offline base is made here; any other base must be pullable and pinned by digest
case "$base" in
  medops-base:*) bash scripts/base-image.sh "$base" ;;
  *@sha256:*) ;;
  *) echo "IMAGE_BASE=$base: pin it by digest (name:tag@sha256:...), so a moved tag" \
       "cannot change what the image is built on" >&2; exit 2 ;;
esac
target=${TARGET:-cpu}
TORCH=$([ "$target" = gpu ] && echo cuda || echo cpu) \
  bash scripts/wheelhouse.sh "$context/wheels" "$py"
tags=()
for tag in "$@"; do tags+=(-t "$tag"); done
echo "building ${1} from $base (log: $log) ..." >&2
DOCKER_BUILDKIT=0 $DOCKER build -f components/images/Dockerfile --target "$target" \
  --build-arg BASE="$base" --build-arg MEDOPS_GIT_COMMIT="$(git rev-parse HEAD)" \
  "${tags[@]}" "$context" >"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
# the medops images this build replaced (untagged now); nothing else on the engine
$DOCKER image prune -f --filter label=org.opencontainers.image.title=medops >/dev/null
size=$($DOCKER image inspect -f '{{.Size}}' "$1")
echo "image $* : $((size / 1000000)) MB, built in $(( $(date +%s) - started )) s" >&2
