"""Where a recipe's ``model.base`` is on this machine: the one resolver every task uses.

``pkg://package/path`` (an installed asset package), a local directory or file (a
``.gguf`` is converted once into the medops model cache), or a Hugging Face hub id
(``org/name``) that ``from_pretrained`` finds in the local cache: no network either way.
"""

from __future__ import annotations

from pathlib import Path

from medops.assets import PKG_SCHEME, resolve_uri
from medops.errors import MissingInputError
from medops.model.gguf_cache import is_gguf, materialize


def resolve_base(base: str) -> str:
    """A path or model id ``from_pretrained`` can load without a network."""
    if base.startswith(PKG_SCHEME) or Path(base).expanduser().exists():
        path = resolve_uri(base)
        return str(materialize(path) if is_gguf(path) else path)
    if base.count("/") == 1 and not base.startswith((".", "/", "~")):
        return base  # a hub id: from_pretrained finds it in the local cache or fails clearly
    raise MissingInputError(
        f"model.base {base!r} is neither an existing path, a pkg:// asset nor a hub id "
        "(org/name); point it at a local model directory"
    )
