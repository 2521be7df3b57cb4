"""The content hash of a recipe's sources, read at compile time where they are readable.

A KFP cache key covers a task's inputs, and a source URI alone says nothing about the
bytes behind it: the hash goes into the pipeline as a parameter so that new data under
the same URI is a cache miss for prepare.
"""

from __future__ import annotations

import hashlib
import zipfile

from medops.assets import read_bytes
from medops.recipe import Recipe


def sources_sha256(recipe: Recipe) -> str:
    """sha256 over every source's URI, member, role and bytes; "" if any is unreadable here
    (e.g. a path that only exists on the cluster's volume)."""
    digest = hashlib.sha256()
    for source in recipe.data.sources:
        try:
            content = read_bytes(source.uri, source.member)
        except (OSError, zipfile.BadZipFile):
            return ""
        digest.update(f"{source.uri}\n{source.member or ''}\n{source.role}\n".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()
