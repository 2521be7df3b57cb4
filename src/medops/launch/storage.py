"""Where cluster runs keep stage directories on the shared volume (``cluster.storage``).

Datasets, checkpoints and models are too large for KFP artifact passing, so on a cluster a
stage writes its directory to the PVC and its KFP artifact only records where that is
(see ``medops.launch.kfp_task.publish``). Layout under the mount path:

- ``<mount>/<run-key>/<stage>``: one pipeline run's stages; the run key is also the name of
  the run's FineTune, whose operator reads and writes ``<mount>/<finetune-name>/<stage>``.
- ``<mount>/prepared/<recipe>-<key>``: a cached prepare, addressed by its inputs' content
  (recipe and sources hash), so that a cache hit keeps pointing at files that match it.

Every function returns "" when there is no storage root: the stage then writes into its
KFP artifact, as in embedded runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

_NAME_ROOM = 40  # recipe-name part of a run key: the key names a FineTune and its RayJob


def run_key(recipe_name: str, run_id: str) -> str:
    """``<recipe>-<first 8 of the run id>``: a DNS-1123 name, the same on every retry."""
    short = "".join(ch for ch in run_id.lower() if ch.isalnum())[:8]
    if not short:
        raise ValueError("a cluster stage needs the pipeline run id to place its directory")
    return f"{recipe_name[:_NAME_ROOM].rstrip('-')}-{short}"


def run_location(storage_root: str, recipe_json: str, run_id: str, stage: str) -> str:
    """``<root>/<run-key>/<stage>``, or "" without a storage root."""
    if not storage_root:
        return ""
    return str(Path(storage_root) / run_key(json.loads(recipe_json)["name"], run_id) / stage)


def prepared_location(
    storage_root: str, recipe_json: str, sources_sha256: str, run_id: str = ""
) -> str:
    """Content-addressed when the sources' hash is known (prepare is cached then); per run
    (``run_id`` given) when it is not, so a rerun never overwrites data another run reads."""
    if not storage_root:
        return ""
    if run_id:
        return run_location(storage_root, recipe_json, run_id, "prepare")
    key = hashlib.sha256(f"{recipe_json}\n{sources_sha256}".encode()).hexdigest()[:16]
    name = json.loads(recipe_json)["name"]
    return str(Path(storage_root) / "prepared" / f"{name[:_NAME_ROOM].rstrip('-')}-{key}")
